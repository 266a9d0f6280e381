// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./IConsortium.sol";
import {ConsortiumVoting} from "./ConsortiumVoting.sol";
import {ROLE_MASK, ROLE_REGULATOR} from "./Roles.sol";

/**
 * @title Consortium
 * @notice Who takes part in provnet: organisations (name, roles, governance key, status)
 * and the node accounts they run (gRPC endpoint, TLS-certificate digest, optional TEE
 * measurement). Admission, suspension and reinstatement are decided by the ballots of
 * {ConsortiumVoting}: a majority of all non-removed members and at least `minApprovals`
 * distinct organisations, then a timelock during which members may object and a
 * regulator may veto, then an explicit {execute}. Genesis members are set at deployment.
 * The enclave measurements the consortium trusts are decided by the same ballots
 * ({proposeMeasurement}, {proposeMeasurementRevocation}); a node may declare only a
 * trusted measurement, so no organisation can vouch for its own enclave alone.
 *
 * Recommended genesis settings for a production consortium: thresholdPercent 67,
 * minApprovals 2 (more for a large consortium), proposalLifetime 7 days, timelockDelay
 * 2 days (67 % of 3 members is all 3: use 66 for two of three). A zero timelock (the carrying vote executes at once, nobody can object or veto
 * after the quorum) is for development chains and tests only. With fewer members than
 * `minApprovals` no proposal can ever carry.
 * @dev Every state change is an event carrying the full new state, so an indexer can
 * answer "was this org / node / enclave measurement trusted at block N?" from events alone.
 * Storage keeps only what a rule needs plus what the views must return. At most one
 * proposal per organisation id is open at a time; an admission binds the new admin
 * account only when it is executed, so a pending or dead proposal blocks no address.
 */
contract Consortium is IConsortium, ConsortiumVoting {
    /// @notice A member set at deployment, Active from the start.
    struct GenesisMember {
        bytes32 orgId;
        string name;
        uint8 roles;
        address admin;
    }

    struct Org {
        address admin;
        OrgStatus status;
        uint8 roles;
    }

    struct Node {
        NodeStatus status;
        bytes32 tlsCertSha256;
        bytes32 teeMeasurement;
        string endpoint;
    }

    struct Proposal {
        // The organisation, or for measurement actions the measurement.
        bytes32 orgId;
        uint8 action;
        // Admissions only: the new organisation's roles and admin, bound at execution.
        uint8 roles;
        address admin;
        // Measurement trust only: the algorithm digest the enclave runs.
        bytes32 algorithmDigest;
    }

    struct Measurement {
        MeasurementStatus status;
        bytes32 algorithmDigest;
    }

    /// @notice Proposal action: admit a Proposed organisation.
    uint8 public constant ACTION_ADMIT = 0;
    /// @notice Proposal action: suspend an Active organisation.
    uint8 public constant ACTION_SUSPEND = 1;
    /// @notice Proposal action: reinstate a Suspended organisation.
    uint8 public constant ACTION_REINSTATE = 2;
    /// @notice Proposal action: trust an enclave measurement.
    uint8 public constant ACTION_TRUST_MEASUREMENT = 3;
    /// @notice Proposal action: revoke a trusted enclave measurement, for good.
    uint8 public constant ACTION_REVOKE_MEASUREMENT = 4;
    /// @notice Longest accepted node endpoint, in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @notice Longest accepted proposal lifetime and timelock delay.
    uint64 public constant MAX_DURATION = 365 days;

    /// @inheritdoc IConsortium
    uint8 public immutable thresholdPercent;

    /// @inheritdoc IConsortium
    uint8 public immutable minApprovals;

    /// @inheritdoc IConsortium
    uint64 public immutable proposalLifetime;

    /// @inheritdoc IConsortium
    uint64 public immutable timelockDelay;

    /// @inheritdoc IConsortium
    uint256 public activeOrgCount;

    /// @inheritdoc IConsortium
    uint256 public memberCount;

    uint256 private _proposalNonce;
    mapping(bytes32 orgId => Org) private _orgs;
    mapping(bytes32 orgId => string) private _orgNames;
    mapping(address account => bytes32 orgId) private _accountOrg;
    mapping(address node => Node) private _nodes;
    mapping(bytes32 proposalId => Proposal) private _proposals;
    mapping(bytes32 orgId => bytes32 proposalId) private _openProposal;
    mapping(bytes32 measurement => Measurement) private _measurements;
    mapping(bytes32 measurement => bytes32 proposalId) private _openMeasurementProposal;

    /**
     * @notice The governance settings were set (at deployment, for good).
     * @param thresholdPercent Percentage (1..100) of non-removed members whose votes carry a proposal.
     * @param minApprovals Least number of distinct organisations that carry a proposal (at least 2).
     * @param proposalLifetime Seconds a proposal stays open for votes, and then for execution after its timelock.
     * @param timelockDelay Seconds between reaching the quorum and the earliest execution.
     */
    event GovernanceSettings(uint8 thresholdPercent, uint8 minApprovals, uint64 proposalLifetime, uint64 timelockDelay);

    /**
     * @notice A proposal was opened.
     * @param proposalId The proposal.
     * @param action 0 Admit, 1 Suspend, 2 Reinstate.
     * @param orgId The organisation the proposal is about.
     * @param proposerOrg The proposing organisation (its vote is cast in the same transaction).
     * @param expiresAt Time from which it can no longer be voted.
     */
    event ProposalCreated(
        bytes32 indexed proposalId, uint8 action, bytes32 indexed orgId, bytes32 proposerOrg, uint64 expiresAt
    );

    /**
     * @notice An organisation was put forward for admission (genesis members too). Its admin
     * account is bound only when the admission is executed ({OrgAdmitted}).
     * @param orgId The organisation.
     * @param name Its display name.
     * @param roles Its role bitmask.
     * @param admin Its proposed governance key.
     */
    event OrgProposed(bytes32 indexed orgId, string name, uint8 roles, address admin);

    /**
     * @notice An organisation became Active by admission (or at genesis).
     * @param orgId The organisation.
     */
    event OrgAdmitted(bytes32 indexed orgId);

    /**
     * @notice An organisation was suspended: its admin and nodes lose every right until reinstated.
     * @param orgId The organisation.
     */
    event OrgSuspended(bytes32 indexed orgId);

    /**
     * @notice A suspended organisation became Active again.
     * @param orgId The organisation.
     */
    event OrgReinstated(bytes32 indexed orgId);

    /**
     * @notice A ballot about an enclave measurement was opened (the proposer's vote follows as {VoteCast}).
     * @param proposalId The proposal.
     * @param action 3 Trust, 4 Revoke.
     * @param measurement The enclave measurement.
     * @param algorithmDigest The approved algorithm the enclave runs (for a revocation: the one it was trusted with).
     * @param proposerOrg The proposing organisation.
     * @param expiresAt Time from which it can no longer be voted.
     */
    event MeasurementProposed(
        bytes32 indexed proposalId,
        uint8 action,
        bytes32 indexed measurement,
        bytes32 algorithmDigest,
        bytes32 proposerOrg,
        uint64 expiresAt
    );

    /**
     * @notice The consortium trusts an enclave measurement from this event's block on.
     * @param measurement The enclave measurement.
     * @param algorithmDigest The approved algorithm the enclave runs.
     * @param proposalId The executed proposal.
     */
    event MeasurementTrusted(bytes32 indexed measurement, bytes32 algorithmDigest, bytes32 proposalId);

    /**
     * @notice The consortium no longer trusts an enclave measurement, from this event's block on, for good.
     * @param measurement The enclave measurement.
     * @param algorithmDigest The algorithm it was trusted with.
     * @param proposalId The executed proposal.
     */
    event MeasurementRevoked(bytes32 indexed measurement, bytes32 algorithmDigest, bytes32 proposalId);

    /**
     * @notice A node account was registered.
     * @param node The node account.
     * @param orgId The owning organisation.
     * @param endpoint The node's gRPC endpoint.
     * @param tlsCertSha256 SHA-256 of the node's TLS certificate.
     * @param teeMeasurement Enclave measurement, zero if none.
     */
    event NodeRegistered(
        address indexed node,
        bytes32 indexed orgId,
        string endpoint,
        bytes32 tlsCertSha256,
        bytes32 teeMeasurement
    );

    /**
     * @notice A node's endpoint, certificate or measurement changed (all new values given).
     * @param node The node account.
     * @param orgId The owning organisation.
     * @param endpoint The node's gRPC endpoint.
     * @param tlsCertSha256 SHA-256 of the node's TLS certificate.
     * @param teeMeasurement Enclave measurement, zero if none.
     */
    event NodeUpdated(
        address indexed node,
        bytes32 indexed orgId,
        string endpoint,
        bytes32 tlsCertSha256,
        bytes32 teeMeasurement
    );

    /**
     * @notice A node account was revoked, for good.
     * @param node The node account.
     * @param orgId The owning organisation.
     */
    event NodeRevoked(address indexed node, bytes32 indexed orgId);

    /// @notice The threshold is not within 1..100.
    /// @param thresholdPercent The rejected value.
    error InvalidThreshold(uint8 thresholdPercent);

    /// @notice The minimum number of approving organisations is below 2 (one organisation could decide alone).
    /// @param minApprovals The rejected value.
    error InvalidMinApprovals(uint8 minApprovals);

    /// @notice The proposal lifetime is zero or above {MAX_DURATION}.
    /// @param proposalLifetime The rejected value.
    error InvalidProposalLifetime(uint64 proposalLifetime);

    /// @notice The timelock delay is above {MAX_DURATION}.
    /// @param timelockDelay The rejected value.
    error InvalidTimelock(uint64 timelockDelay);

    /// @notice The genesis member list is empty.
    error NoGenesisMembers();

    /// @notice The caller is not the admin of an Active organisation.
    /// @param account The caller.
    error NotActiveMemberAdmin(address account);

    /// @notice The organisation id is already taken.
    /// @param orgId The organisation id.
    error OrgAlreadyExists(bytes32 orgId);

    /// @notice The organisation id is zero.
    error InvalidOrgId();

    /// @notice The roles mask is zero or has undefined bits.
    /// @param roles The rejected mask.
    error InvalidRoles(uint8 roles);

    /// @notice The account is already bound to an organisation (the zero address counts as bound).
    /// @param account The account.
    error AccountAlreadyBound(address account);

    /// @notice The organisation is not Active.
    /// @param orgId The organisation.
    error OrgNotActive(bytes32 orgId);

    /// @notice The organisation is not Suspended.
    /// @param orgId The organisation.
    error OrgNotSuspended(bytes32 orgId);

    /// @notice The organisation is not Proposed (admission already decided).
    /// @param orgId The organisation.
    error OrgNotProposed(bytes32 orgId);

    /// @notice The organisation has already voted on this proposal.
    /// @param proposalId The proposal.
    /// @param orgId The voting organisation.
    error AlreadyVoted(bytes32 proposalId, bytes32 orgId);

    /// @notice Another proposal about this organisation id is still open (it frees the id
    /// once executed, expired, vetoed or cancelled).
    /// @param orgId The organisation.
    /// @param proposalId The open proposal.
    error ProposalPending(bytes32 orgId, bytes32 proposalId);

    /// @notice An organisation may not propose, vote on, object to or veto its own suspension.
    /// @param orgId The organisation.
    error CannotVoteOnOwnSuspension(bytes32 orgId);

    /// @notice The TLS certificate digest is zero.
    error InvalidCertDigest();

    /// @notice The endpoint is empty or longer than {MAX_ENDPOINT_LENGTH}.
    error InvalidEndpoint();

    /// @notice The node is not Active (unknown or revoked).
    /// @param node The node account.
    error NodeNotActive(address node);

    /// @notice The enclave measurement is zero.
    error InvalidMeasurement();

    /// @notice The algorithm digest is zero.
    error InvalidAlgorithmDigest();

    /// @notice The measurement was already trusted (or revoked, which is final): it cannot be proposed for trust.
    /// @param measurement The enclave measurement.
    /// @param status Its status.
    error MeasurementAlreadyKnown(bytes32 measurement, MeasurementStatus status);

    /// @notice The measurement is not trusted by the consortium (unknown or revoked).
    /// @param measurement The enclave measurement.
    error UntrustedMeasurement(bytes32 measurement);

    /// @notice Another proposal about this measurement is still open.
    /// @param measurement The enclave measurement.
    /// @param proposalId The open proposal.
    error MeasurementProposalPending(bytes32 measurement, bytes32 proposalId);

    /// @notice The caller's organisation does not own the node.
    /// @param node The node account.
    /// @param orgId The caller's organisation.
    error NotNodeOwner(address node, bytes32 orgId);

    /**
     * @notice Deploys the consortium with its governance settings and genesis members, all Active.
     * @dev Recommended for production: 67, 2, 7 days, 2 days. A zero timelock is for
     * development chains and tests only.
     * @param settings Threshold 1..100, minApprovals at least 2, proposalLifetime 1..MAX_DURATION,
     * timelockDelay 0..MAX_DURATION (see {IConsortium-Governance}).
     * @param genesis The founding organisations.
     */
    constructor(Governance memory settings, GenesisMember[] memory genesis) {
        uint8 thresholdPercent_ = settings.thresholdPercent;
        uint8 minApprovals_ = settings.minApprovals;
        uint64 proposalLifetime_ = settings.proposalLifetime;
        uint64 timelockDelay_ = settings.timelockDelay;
        if (thresholdPercent_ == 0 || thresholdPercent_ > 100) revert InvalidThreshold(thresholdPercent_);
        if (minApprovals_ < 2) revert InvalidMinApprovals(minApprovals_);
        if (proposalLifetime_ == 0 || proposalLifetime_ > MAX_DURATION) {
            revert InvalidProposalLifetime(proposalLifetime_);
        }
        if (timelockDelay_ > MAX_DURATION) revert InvalidTimelock(timelockDelay_);
        if (genesis.length == 0) revert NoGenesisMembers();
        thresholdPercent = thresholdPercent_;
        minApprovals = minApprovals_;
        proposalLifetime = proposalLifetime_;
        timelockDelay = timelockDelay_;
        emit GovernanceSettings(thresholdPercent_, minApprovals_, proposalLifetime_, timelockDelay_);
        for (uint256 i = 0; i < genesis.length; ++i) {
            GenesisMember memory m = genesis[i];
            _checkNewOrg(m.orgId, m.roles, m.admin);
            emit OrgProposed(m.orgId, m.name, m.roles, m.admin);
            _admit(m.orgId, m.name, m.roles, m.admin);
        }
    }

    // ----------------------------------------------------------------- governance

    /**
     * @notice Puts a new organisation forward for admission; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation. Nothing is bound until the admission
     * is executed: the organisation id is reserved while the proposal is open
     * ({ProposalPending} for a second one), the admin account not at all.
     * @param orgId New, non-zero organisation id.
     * @param name Display name.
     * @param roles Non-zero role mask within PROVIDER|CONSUMER|COMPUTE|REGULATOR.
     * @param admin The new organisation's governance key; non-zero and not bound to an organisation.
     * @return proposalId The admission proposal.
     */
    function proposeMember(bytes32 orgId, string calldata name, uint8 roles, address admin)
        external
        returns (bytes32 proposalId)
    {
        bytes32 proposerOrg = _callerOrg();
        _checkNewOrg(orgId, roles, admin);
        _claim(orgId);
        emit OrgProposed(orgId, name, roles, admin);
        _orgNames[orgId] = name;
        return _propose(ACTION_ADMIT, orgId, proposerOrg, roles, admin);
    }

    /**
     * @notice Proposes suspending an Active organisation; the caller's vote is cast too.
     * @dev Caller: admin of another Active organisation. The target counts among the
     * members for the quorum but may not vote, object or veto.
     * @param orgId The organisation to suspend.
     * @return proposalId The suspension proposal.
     */
    function proposeSuspension(bytes32 orgId) external returns (bytes32 proposalId) {
        bytes32 proposerOrg = _callerOrg();
        if (_orgs[orgId].status != OrgStatus.Active) revert OrgNotActive(orgId);
        if (proposerOrg == orgId) revert CannotVoteOnOwnSuspension(orgId);
        _claim(orgId);
        return _propose(ACTION_SUSPEND, orgId, proposerOrg, 0, address(0));
    }

    /**
     * @notice Proposes reinstating a Suspended organisation; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation.
     * @param orgId The organisation to reinstate.
     * @return proposalId The reinstatement proposal.
     */
    function proposeReinstatement(bytes32 orgId) external returns (bytes32 proposalId) {
        bytes32 proposerOrg = _callerOrg();
        if (_orgs[orgId].status != OrgStatus.Suspended) revert OrgNotSuspended(orgId);
        _claim(orgId);
        return _propose(ACTION_REINSTATE, orgId, proposerOrg, 0, address(0));
    }

    /**
     * @notice Votes for an open proposal; queues it (or, with a zero timelock, executes it)
     * when the quorum is reached.
     * @dev Caller: admin of an Active organisation (not the target of a suspension).
     * The quorum is computed now, over the members now.
     * @param proposalId The proposal.
     */
    function vote(bytes32 proposalId) external {
        _castVote(proposalId, _callerOrg());
    }

    /**
     * @notice Proposes trusting an enclave measurement; the caller's vote is cast too.
     * When the proposal is executed the measurement is trusted ({MeasurementTrusted}) and
     * nodes may declare it.
     * @dev Caller: admin of an Active organisation. At most one proposal per measurement is
     * open; a revoked measurement can never be trusted again (a fixed build has a new one).
     * @param measurement Non-zero enclave measurement, neither trusted nor revoked.
     * @param algorithmDigest Non-zero digest of the approved algorithm the enclave runs.
     * @return proposalId The trust proposal.
     */
    function proposeMeasurement(bytes32 measurement, bytes32 algorithmDigest) external returns (bytes32 proposalId) {
        bytes32 proposerOrg = _callerOrg();
        if (measurement == bytes32(0)) revert InvalidMeasurement();
        if (algorithmDigest == bytes32(0)) revert InvalidAlgorithmDigest();
        MeasurementStatus status = _measurements[measurement].status;
        if (status != MeasurementStatus.None) revert MeasurementAlreadyKnown(measurement, status);
        return _proposeMeasurementAction(ACTION_TRUST_MEASUREMENT, measurement, algorithmDigest, proposerOrg);
    }

    /**
     * @notice Proposes revoking a trusted enclave measurement, for good; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation. Nodes that declared the measurement keep
     * it in {nodeInfo}, but {isMeasurementTrusted} turns false and {updateNode} then requires
     * another (trusted) measurement or none.
     * @param measurement A trusted enclave measurement.
     * @return proposalId The revocation proposal.
     */
    function proposeMeasurementRevocation(bytes32 measurement) external returns (bytes32 proposalId) {
        bytes32 proposerOrg = _callerOrg();
        Measurement storage m = _measurements[measurement];
        if (m.status != MeasurementStatus.Trusted) revert UntrustedMeasurement(measurement);
        return _proposeMeasurementAction(ACTION_REVOKE_MEASUREMENT, measurement, m.algorithmDigest, proposerOrg);
    }

    // ---------------------------------------------------------------------- nodes

    /**
     * @notice Registers a node account for the caller's organisation.
     * @dev Caller: admin of an Active organisation.
     * @param node The node's account; non-zero and never bound before.
     * @param endpoint The node's gRPC endpoint (1..MAX_ENDPOINT_LENGTH bytes).
     * @param tlsCertSha256 SHA-256 of the node's TLS certificate (non-zero).
     * @param teeMeasurement The node's enclave measurement, zero if none; otherwise one the
     * consortium trusts now ({UntrustedMeasurement}).
     */
    function registerNode(address node, string calldata endpoint, bytes32 tlsCertSha256, bytes32 teeMeasurement)
        external
    {
        bytes32 orgId = _callerOrg();
        _bindAccount(node, orgId);
        _checkNodeData(endpoint, tlsCertSha256);
        Node storage n = _nodes[node];
        n.status = NodeStatus.Active;
        n.tlsCertSha256 = tlsCertSha256;
        if (teeMeasurement != bytes32(0)) {
            _requireTrusted(teeMeasurement);
            n.teeMeasurement = teeMeasurement;
        }
        n.endpoint = endpoint;
        emit NodeRegistered(node, orgId, endpoint, tlsCertSha256, teeMeasurement);
    }

    /**
     * @notice Replaces an Active node's endpoint, certificate digest and TEE measurement.
     * @dev Caller: admin of the node's organisation, which must be Active.
     * @param node The node's account.
     * @param endpoint The new gRPC endpoint (1..MAX_ENDPOINT_LENGTH bytes).
     * @param tlsCertSha256 SHA-256 of the new TLS certificate (non-zero).
     * @param teeMeasurement The new enclave measurement, zero if none; otherwise one the
     * consortium trusts now ({UntrustedMeasurement}), also when it is unchanged.
     */
    function updateNode(address node, string calldata endpoint, bytes32 tlsCertSha256, bytes32 teeMeasurement)
        external
    {
        bytes32 orgId = _callerOrg();
        Node storage n = _ownedActiveNode(node, orgId);
        _checkNodeData(endpoint, tlsCertSha256);
        if (teeMeasurement != bytes32(0)) _requireTrusted(teeMeasurement);
        n.tlsCertSha256 = tlsCertSha256;
        n.teeMeasurement = teeMeasurement;
        n.endpoint = endpoint;
        emit NodeUpdated(node, orgId, endpoint, tlsCertSha256, teeMeasurement);
    }

    /**
     * @notice Revokes a node account for good.
     * @dev Caller: admin of the node's organisation, which may be Active or Suspended
     * (revocation only removes rights, so a suspended organisation can still retire a
     * compromised key before it is reinstated).
     * @param node The node's account.
     */
    function revokeNode(address node) external {
        bytes32 orgId = _accountOrg[msg.sender];
        Org storage org = _orgs[orgId];
        if (
            orgId == bytes32(0) || org.admin != msg.sender
                || (org.status != OrgStatus.Active && org.status != OrgStatus.Suspended)
        ) revert NotActiveMemberAdmin(msg.sender);
        Node storage n = _ownedActiveNode(node, orgId);
        n.status = NodeStatus.Revoked;
        emit NodeRevoked(node, orgId);
    }

    // ---------------------------------------------------------------------- views

    /// @inheritdoc IConsortium
    function orgStatus(bytes32 orgId) external view returns (OrgStatus) {
        OrgStatus status = _orgs[orgId].status;
        if (status == OrgStatus.None && _openProposal[orgId] != bytes32(0)) {
            ProposalState state = proposalState(_openProposal[orgId]);
            if (state == ProposalState.Voting || state == ProposalState.Queued) return OrgStatus.Proposed;
        }
        return status;
    }

    /// @inheritdoc IConsortium
    function orgRoles(bytes32 orgId) external view returns (uint8) {
        return _orgs[orgId].roles;
    }

    /// @inheritdoc IConsortium
    function orgAdmin(bytes32 orgId) external view returns (address) {
        return _orgs[orgId].admin;
    }

    /// @inheritdoc IConsortium
    function orgName(bytes32 orgId) external view returns (string memory) {
        return _orgNames[orgId];
    }

    /// @inheritdoc IConsortium
    function isActiveOrg(bytes32 orgId) public view returns (bool) {
        return _orgs[orgId].status == OrgStatus.Active;
    }

    /// @inheritdoc IConsortium
    function hasRole(bytes32 orgId, uint8 role) external view returns (bool) {
        return role != 0 && _orgs[orgId].roles & role == role;
    }

    /// @inheritdoc IConsortium
    function orgOfAccount(address account) external view returns (bytes32) {
        return _accountOrg[account];
    }

    /// @inheritdoc IConsortium
    function isActiveNode(address node) external view returns (bool) {
        return activeNodeOrg(node) != bytes32(0);
    }

    /// @inheritdoc IConsortium
    function nodeOrg(address node) external view returns (bytes32) {
        return _nodes[node].status == NodeStatus.None ? bytes32(0) : _accountOrg[node];
    }

    /// @inheritdoc IConsortium
    function nodeInfo(address node)
        external
        view
        returns (
            bytes32 orgId,
            NodeStatus status,
            string memory endpoint,
            bytes32 tlsCertSha256,
            bytes32 teeMeasurement
        )
    {
        Node storage n = _nodes[node];
        status = n.status;
        if (status != NodeStatus.None) orgId = _accountOrg[node];
        return (orgId, status, n.endpoint, n.tlsCertSha256, n.teeMeasurement);
    }

    /// @inheritdoc IConsortium
    function activeMemberOrg(address account) external view returns (bytes32 orgId) {
        orgId = _accountOrg[account];
        Org storage org = _orgs[orgId];
        if (
            orgId == bytes32(0) || org.status != OrgStatus.Active
                || (org.admin != account && _nodes[account].status != NodeStatus.Active)
        ) revert NotActiveMember(account);
    }

    /// @inheritdoc IConsortium
    function activeAdminOrg(address account) public view returns (bytes32 orgId) {
        orgId = _accountOrg[account];
        Org storage org = _orgs[orgId];
        if (orgId == bytes32(0) || org.admin != account || org.status != OrgStatus.Active) return bytes32(0);
    }

    /// @inheritdoc IConsortium
    function activeNodeOrg(address node) public view returns (bytes32 orgId) {
        if (_nodes[node].status != NodeStatus.Active) return bytes32(0);
        orgId = _accountOrg[node];
        if (_orgs[orgId].status != OrgStatus.Active) return bytes32(0);
    }

    /// @inheritdoc IConsortium
    function isMeasurementTrusted(bytes32 measurement) public view returns (bool) {
        return _measurements[measurement].status == MeasurementStatus.Trusted;
    }

    /**
     * @notice Everything stored about an enclave measurement.
     * @param measurement The enclave measurement.
     * @return status Its status (None if never trusted).
     * @return algorithmDigest The algorithm it was trusted with (zero if never trusted).
     */
    function measurementInfo(bytes32 measurement)
        external
        view
        returns (MeasurementStatus status, bytes32 algorithmDigest)
    {
        Measurement storage m = _measurements[measurement];
        return (m.status, m.algorithmDigest);
    }

    /**
     * @notice The open proposal about an enclave measurement, if any.
     * @param measurement The enclave measurement.
     * @return The proposal id, zero if none is open (check {proposalState}, as for {openProposal}).
     */
    function openMeasurementProposal(bytes32 measurement) external view returns (bytes32) {
        return _openMeasurementProposal[measurement];
    }

    /// @inheritdoc IConsortium
    function governance() external view returns (Governance memory) {
        return Governance(thresholdPercent, minApprovals, proposalLifetime, timelockDelay);
    }

    /**
     * @notice Votes cast for a proposal so far.
     * @param proposalId The proposal.
     * @return The vote count (0 if unknown).
     */
    function proposalVotes(bytes32 proposalId) external view returns (uint256) {
        return _votes(proposalId);
    }

    /**
     * @notice Whether an organisation voted for a proposal.
     * @param proposalId The proposal.
     * @param orgId The organisation.
     * @return True if it did.
     */
    function hasVoted(bytes32 proposalId, bytes32 orgId) external view returns (bool) {
        return _hasVoted(proposalId, orgId);
    }

    /**
     * @notice Whether a proposal was executed (its action applied).
     * @param proposalId The proposal.
     * @return True if executed.
     */
    function proposalExecuted(bytes32 proposalId) external view returns (bool) {
        return proposalState(proposalId) == ProposalState.Executed;
    }

    /**
     * @notice What a proposal is about.
     * @param proposalId The proposal.
     * @return action 0 Admit, 1 Suspend, 2 Reinstate, 3 Trust measurement, 4 Revoke measurement.
     * @return orgId The organisation, or for actions 3 and 4 the measurement (zero if unknown).
     * @return roles Admissions: the new organisation's roles.
     * @return admin Admissions: the new organisation's admin, bound only at execution.
     */
    function proposalSubject(bytes32 proposalId)
        external
        view
        returns (uint8 action, bytes32 orgId, uint8 roles, address admin)
    {
        Proposal storage p = _proposals[proposalId];
        return (p.action, p.orgId, p.roles, p.admin);
    }

    /**
     * @notice The open proposal about an organisation id, if any.
     * @param orgId The organisation.
     * @return The proposal id, zero if none is open (an open one past its expiry is still returned
     * until it is marked Expired: check {proposalState}).
     */
    function openProposal(bytes32 orgId) external view returns (bytes32) {
        return _openProposal[orgId];
    }

    // ------------------------------------------------------------------- internal

    function _settings() internal view override returns (Settings memory) {
        return Settings(thresholdPercent, minApprovals, proposalLifetime, timelockDelay, memberCount);
    }

    function _callerOrg() internal view override returns (bytes32 orgId) {
        orgId = activeAdminOrg(msg.sender);
        if (orgId == bytes32(0)) revert NotActiveMemberAdmin(msg.sender);
    }

    function _isRegulator(bytes32 orgId) internal view override returns (bool) {
        return _orgs[orgId].roles & ROLE_REGULATOR != 0;
    }

    function _checkParticipant(bytes32 proposalId, bytes32 orgId) internal view override {
        Proposal storage p = _proposals[proposalId];
        if (p.action == ACTION_SUSPEND && p.orgId == orgId) revert CannotVoteOnOwnSuspension(orgId);
    }

    function _revertAlreadyVoted(bytes32 proposalId, bytes32 orgId) internal pure override {
        revert AlreadyVoted(proposalId, orgId);
    }

    function _apply(bytes32 proposalId) internal override {
        Proposal storage p = _proposals[proposalId];
        bytes32 orgId = p.orgId;
        uint8 action = p.action;
        if (action >= ACTION_TRUST_MEASUREMENT) {
            _applyMeasurement(proposalId, p);
            return;
        }
        delete _openProposal[orgId];
        Org storage target = _orgs[orgId];
        if (action == ACTION_ADMIT) {
            if (target.status != OrgStatus.None) revert OrgAlreadyExists(orgId);
            _admit(orgId, "", p.roles, p.admin);
        } else if (action == ACTION_SUSPEND) {
            if (target.status != OrgStatus.Active) revert OrgNotActive(orgId);
            target.status = OrgStatus.Suspended;
            activeOrgCount -= 1;
            emit OrgSuspended(orgId);
        } else {
            if (target.status != OrgStatus.Suspended) revert OrgNotSuspended(orgId);
            target.status = OrgStatus.Active;
            activeOrgCount += 1;
            emit OrgReinstated(orgId);
        }
    }

    function _release(bytes32 proposalId) internal override {
        Proposal storage p = _proposals[proposalId];
        bytes32 orgId = p.orgId;
        if (p.action >= ACTION_TRUST_MEASUREMENT) {
            delete _openMeasurementProposal[orgId];
            return;
        }
        delete _openProposal[orgId];
        if (p.action == ACTION_ADMIT) delete _orgNames[orgId];
    }

    /// @dev Trusts or revokes the measurement of an executed measurement proposal.
    /// Its status cannot have changed since the proposal: only this proposal could change it.
    function _applyMeasurement(bytes32 proposalId, Proposal storage p) private {
        bytes32 measurement = p.orgId;
        delete _openMeasurementProposal[measurement];
        Measurement storage m = _measurements[measurement];
        if (p.action == ACTION_TRUST_MEASUREMENT) {
            bytes32 algorithmDigest = p.algorithmDigest;
            m.status = MeasurementStatus.Trusted;
            m.algorithmDigest = algorithmDigest;
            emit MeasurementTrusted(measurement, algorithmDigest, proposalId);
        } else {
            m.status = MeasurementStatus.Revoked;
            emit MeasurementRevoked(measurement, m.algorithmDigest, proposalId);
        }
    }

    function _proposeMeasurementAction(uint8 action, bytes32 measurement, bytes32 algorithmDigest, bytes32 proposerOrg)
        private
        returns (bytes32 proposalId)
    {
        bytes32 open = _openMeasurementProposal[measurement];
        if (open != bytes32(0) && _holdsSubject(open)) revert MeasurementProposalPending(measurement, open);
        proposalId = keccak256(abi.encode(block.chainid, address(this), action, measurement, ++_proposalNonce));
        Proposal storage p = _proposals[proposalId];
        p.orgId = measurement;
        p.action = action;
        p.algorithmDigest = algorithmDigest;
        _openMeasurementProposal[measurement] = proposalId;
        uint64 expiresAt = _openBallot(proposalId);
        emit MeasurementProposed(proposalId, action, measurement, algorithmDigest, proposerOrg, expiresAt);
        _castVote(proposalId, proposerOrg);
    }

    function _requireTrusted(bytes32 measurement) private view {
        if (!isMeasurementTrusted(measurement)) revert UntrustedMeasurement(measurement);
    }

    /// @dev Validates a new organisation's id, roles and admin (nothing is stored).
    function _checkNewOrg(bytes32 orgId, uint8 roles, address admin) private view {
        if (orgId == bytes32(0)) revert InvalidOrgId();
        if (_orgs[orgId].status != OrgStatus.None) revert OrgAlreadyExists(orgId);
        if (roles == 0 || roles & ~ROLE_MASK != 0) revert InvalidRoles(roles);
        if (admin == address(0) || _accountOrg[admin] != bytes32(0)) revert AccountAlreadyBound(admin);
    }

    /// @dev Makes `orgId` an Active member: binds its admin, stores it, emits OrgAdmitted.
    /// An empty `name` keeps the name stored when the admission was proposed.
    function _admit(bytes32 orgId, string memory name, uint8 roles, address admin) private {
        _bindAccount(admin, orgId);
        Org storage org = _orgs[orgId];
        org.admin = admin;
        org.status = OrgStatus.Active;
        org.roles = roles;
        if (bytes(name).length != 0) _orgNames[orgId] = name;
        activeOrgCount += 1;
        memberCount += 1;
        emit OrgAdmitted(orgId);
    }

    /// @dev Reserves `orgId` for a new proposal; reverts if an open one still holds it.
    function _claim(bytes32 orgId) private {
        bytes32 open = _openProposal[orgId];
        if (open != bytes32(0) && _holdsSubject(open)) revert ProposalPending(orgId, open);
    }

    function _bindAccount(address account, bytes32 orgId) private {
        if (account == address(0) || _accountOrg[account] != bytes32(0)) revert AccountAlreadyBound(account);
        _accountOrg[account] = orgId;
    }

    function _checkNodeData(string calldata endpoint, bytes32 tlsCertSha256) private pure {
        if (bytes(endpoint).length == 0 || bytes(endpoint).length > MAX_ENDPOINT_LENGTH) revert InvalidEndpoint();
        if (tlsCertSha256 == bytes32(0)) revert InvalidCertDigest();
    }

    function _ownedActiveNode(address node, bytes32 orgId) private view returns (Node storage n) {
        n = _nodes[node];
        if (n.status != NodeStatus.Active) revert NodeNotActive(node);
        if (_accountOrg[node] != orgId) revert NotNodeOwner(node, orgId);
    }

    function _propose(uint8 action, bytes32 orgId, bytes32 proposerOrg, uint8 roles, address admin)
        private
        returns (bytes32 proposalId)
    {
        proposalId = keccak256(abi.encode(block.chainid, address(this), action, orgId, ++_proposalNonce));
        Proposal storage p = _proposals[proposalId];
        p.orgId = orgId;
        p.action = action;
        if (action == ACTION_ADMIT) {
            p.roles = roles;
            p.admin = admin;
        }
        _openProposal[orgId] = proposalId;
        uint64 expiresAt = _openBallot(proposalId);
        emit ProposalCreated(proposalId, action, orgId, proposerOrg, expiresAt);
        _castVote(proposalId, proposerOrg);
    }
}
