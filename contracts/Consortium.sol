// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./IConsortium.sol";
import {ConsortiumVoting} from "./ConsortiumVoting.sol";
import {ROLE_MASK} from "./Roles.sol";

/**
 * @title Consortium
 * @notice Who takes part in provnet: organisations (name, roles, governance key, status)
 * and the node accounts they run (gRPC endpoint, TLS-certificate digest, optional TEE
 * measurement). Admission, suspension and reinstatement are decided by a threshold vote
 * of the admins of Active organisations; genesis members are set at deployment.
 * @dev Every state change is an event carrying the full new state, so an indexer can
 * answer "was this org / node / enclave measurement trusted at block N?" from events alone.
 * Storage keeps only what a rule needs plus what the views must return.
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
        // Bumped on every status change; proposals made at an older epoch are stale.
        uint32 epoch;
    }

    struct Node {
        NodeStatus status;
        bytes32 tlsCertSha256;
        bytes32 teeMeasurement;
        string endpoint;
    }

    struct Proposal {
        bytes32 orgId;
        uint8 action;
        bool executed;
        uint32 epoch;
        uint32 votes;
    }

    /// @notice Proposal action: admit a Proposed organisation.
    uint8 public constant ACTION_ADMIT = 0;
    /// @notice Proposal action: suspend an Active organisation.
    uint8 public constant ACTION_SUSPEND = 1;
    /// @notice Proposal action: reinstate a Suspended organisation.
    uint8 public constant ACTION_REINSTATE = 2;
    /// @notice Longest accepted node endpoint, in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    /// @inheritdoc IConsortium
    uint8 public immutable thresholdPercent;

    /// @inheritdoc IConsortium
    uint256 public activeOrgCount;

    uint256 private _proposalNonce;
    mapping(bytes32 orgId => Org) private _orgs;
    mapping(bytes32 orgId => string) private _orgNames;
    mapping(address account => bytes32 orgId) private _accountOrg;
    mapping(address node => Node) private _nodes;
    mapping(bytes32 proposalId => Proposal) private _proposals;

    /**
     * @notice The vote threshold was set.
     * @param thresholdPercent Percentage (1..100) of eligible active organisations needed.
     */
    event ThresholdSet(uint8 thresholdPercent);

    /**
     * @notice A proposal was opened.
     * @param proposalId The proposal.
     * @param action 0 Admit, 1 Suspend, 2 Reinstate.
     * @param orgId The organisation the proposal is about.
     * @param proposerOrg The proposing organisation (its vote is cast in the same transaction).
     */
    event ProposalCreated(bytes32 indexed proposalId, uint8 action, bytes32 indexed orgId, bytes32 proposerOrg);

    /**
     * @notice An organisation voted for a proposal.
     * @param proposalId The proposal.
     * @param voterOrg The voting organisation.
     * @param votes Votes for the proposal after this one.
     * @param required Votes needed at the time of this vote.
     */
    event VoteCast(bytes32 indexed proposalId, bytes32 indexed voterOrg, uint256 votes, uint256 required);

    /**
     * @notice A proposal reached its threshold and its action was applied.
     * @param proposalId The proposal.
     */
    event ProposalExecuted(bytes32 indexed proposalId);

    /**
     * @notice An organisation was put forward for admission (genesis members too).
     * @param orgId The organisation.
     * @param name Its display name.
     * @param roles Its role bitmask.
     * @param admin Its governance key.
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

    /// @notice The proposal was already executed.
    /// @param proposalId The proposal.
    error ProposalAlreadyExecuted(bytes32 proposalId);

    /// @notice No such proposal.
    /// @param proposalId The proposal.
    error UnknownProposal(bytes32 proposalId);

    /// @notice The target organisation's status changed since the proposal was made
    /// (e.g. a suspension proposal outlived a suspension and a reinstatement).
    /// @param proposalId The proposal.
    error ProposalSuperseded(bytes32 proposalId);

    /// @notice An organisation may neither propose nor vote on its own suspension.
    /// @param orgId The organisation.
    error CannotVoteOnOwnSuspension(bytes32 orgId);

    /// @notice The TLS certificate digest is zero.
    error InvalidCertDigest();

    /// @notice The endpoint is empty or longer than {MAX_ENDPOINT_LENGTH}.
    error InvalidEndpoint();

    /// @notice The node is not Active (unknown or revoked).
    /// @param node The node account.
    error NodeNotActive(address node);

    /// @notice The caller's organisation does not own the node.
    /// @param node The node account.
    /// @param orgId The caller's organisation.
    error NotNodeOwner(address node, bytes32 orgId);

    /**
     * @notice Deploys the consortium with its genesis members, all Active.
     * @param thresholdPercent_ Percentage (1..100) of eligible active organisations whose votes carry a proposal.
     * @param genesis The founding organisations.
     */
    constructor(uint8 thresholdPercent_, GenesisMember[] memory genesis) {
        if (thresholdPercent_ == 0 || thresholdPercent_ > 100) revert InvalidThreshold(thresholdPercent_);
        if (genesis.length == 0) revert NoGenesisMembers();
        thresholdPercent = thresholdPercent_;
        emit ThresholdSet(thresholdPercent_);
        for (uint256 i = 0; i < genesis.length; ++i) {
            GenesisMember memory m = genesis[i];
            _addOrg(m.orgId, m.name, m.roles, m.admin);
            Org storage org = _orgs[m.orgId];
            org.status = OrgStatus.Active;
            org.epoch = 1;
            emit OrgAdmitted(m.orgId);
        }
        activeOrgCount = genesis.length;
    }

    // ----------------------------------------------------------------- governance

    /**
     * @notice Puts a new organisation forward for admission; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation. The organisation becomes Proposed and
     * its admin account is bound to it at once.
     * @param orgId New, non-zero organisation id.
     * @param name Display name.
     * @param roles Non-zero role mask within PROVIDER|CONSUMER|COMPUTE|REGULATOR.
     * @param admin The new organisation's governance key; non-zero and never bound before.
     * @return proposalId The admission proposal.
     */
    function proposeMember(bytes32 orgId, string calldata name, uint8 roles, address admin)
        external
        returns (bytes32 proposalId)
    {
        bytes32 proposerOrg = _requireActiveAdmin();
        _addOrg(orgId, name, roles, admin);
        return _propose(ACTION_ADMIT, orgId, proposerOrg);
    }

    /**
     * @notice Proposes suspending an Active organisation; the caller's vote is cast too.
     * @dev Caller: admin of another Active organisation. The target is not an eligible voter.
     * @param orgId The organisation to suspend.
     * @return proposalId The suspension proposal.
     */
    function proposeSuspension(bytes32 orgId) external returns (bytes32 proposalId) {
        bytes32 proposerOrg = _requireActiveAdmin();
        if (_orgs[orgId].status != OrgStatus.Active) revert OrgNotActive(orgId);
        if (proposerOrg == orgId) revert CannotVoteOnOwnSuspension(orgId);
        return _propose(ACTION_SUSPEND, orgId, proposerOrg);
    }

    /**
     * @notice Proposes reinstating a Suspended organisation; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation.
     * @param orgId The organisation to reinstate.
     * @return proposalId The reinstatement proposal.
     */
    function proposeReinstatement(bytes32 orgId) external returns (bytes32 proposalId) {
        bytes32 proposerOrg = _requireActiveAdmin();
        if (_orgs[orgId].status != OrgStatus.Suspended) revert OrgNotSuspended(orgId);
        return _propose(ACTION_REINSTATE, orgId, proposerOrg);
    }

    /**
     * @notice Votes for a proposal; executes it when the threshold is reached.
     * @dev Caller: admin of an Active organisation (not the target of a suspension).
     * The threshold is computed now, over the organisations eligible now.
     * @param proposalId The proposal.
     */
    function vote(bytes32 proposalId) external {
        bytes32 voterOrg = _requireActiveAdmin();
        Proposal storage p = _proposals[proposalId];
        if (p.orgId == bytes32(0)) revert UnknownProposal(proposalId);
        if (p.executed) revert ProposalAlreadyExecuted(proposalId);
        _vote(proposalId, p, voterOrg);
    }

    // ---------------------------------------------------------------------- nodes

    /**
     * @notice Registers a node account for the caller's organisation.
     * @dev Caller: admin of an Active organisation.
     * @param node The node's account; non-zero and never bound before.
     * @param endpoint The node's gRPC endpoint (1..MAX_ENDPOINT_LENGTH bytes).
     * @param tlsCertSha256 SHA-256 of the node's TLS certificate (non-zero).
     * @param teeMeasurement The node's enclave measurement, zero if none.
     */
    function registerNode(address node, string calldata endpoint, bytes32 tlsCertSha256, bytes32 teeMeasurement)
        external
    {
        bytes32 orgId = _requireActiveAdmin();
        _bindAccount(node, orgId);
        _checkNodeData(endpoint, tlsCertSha256);
        Node storage n = _nodes[node];
        n.status = NodeStatus.Active;
        n.tlsCertSha256 = tlsCertSha256;
        if (teeMeasurement != bytes32(0)) n.teeMeasurement = teeMeasurement;
        n.endpoint = endpoint;
        emit NodeRegistered(node, orgId, endpoint, tlsCertSha256, teeMeasurement);
    }

    /**
     * @notice Replaces an Active node's endpoint, certificate digest and TEE measurement.
     * @dev Caller: admin of the node's organisation, which must be Active.
     * @param node The node's account.
     * @param endpoint The new gRPC endpoint (1..MAX_ENDPOINT_LENGTH bytes).
     * @param tlsCertSha256 SHA-256 of the new TLS certificate (non-zero).
     * @param teeMeasurement The new enclave measurement, zero if none.
     */
    function updateNode(address node, string calldata endpoint, bytes32 tlsCertSha256, bytes32 teeMeasurement)
        external
    {
        bytes32 orgId = _requireActiveAdmin();
        Node storage n = _ownedActiveNode(node, orgId);
        _checkNodeData(endpoint, tlsCertSha256);
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
        return _orgs[orgId].status;
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

    /**
     * @notice Votes cast for a proposal so far.
     * @param proposalId The proposal.
     * @return The vote count (0 if unknown).
     */
    function proposalVotes(bytes32 proposalId) external view returns (uint256) {
        return _proposals[proposalId].votes;
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
     * @notice Whether a proposal reached its threshold and was applied.
     * @param proposalId The proposal.
     * @return True if executed.
     */
    function proposalExecuted(bytes32 proposalId) external view returns (bool) {
        return _proposals[proposalId].executed;
    }

    // ------------------------------------------------------------------- internal

    function _requireActiveAdmin() private view returns (bytes32 orgId) {
        orgId = activeAdminOrg(msg.sender);
        if (orgId == bytes32(0)) revert NotActiveMemberAdmin(msg.sender);
    }

    /// @dev Validates and stores a new Proposed organisation, binds its admin, emits OrgProposed.
    function _addOrg(bytes32 orgId, string memory name, uint8 roles, address admin) private {
        if (orgId == bytes32(0)) revert InvalidOrgId();
        Org storage org = _orgs[orgId];
        if (org.status != OrgStatus.None) revert OrgAlreadyExists(orgId);
        if (roles == 0 || roles & ~ROLE_MASK != 0) revert InvalidRoles(roles);
        _bindAccount(admin, orgId);
        org.admin = admin;
        org.status = OrgStatus.Proposed;
        org.roles = roles;
        _orgNames[orgId] = name;
        emit OrgProposed(orgId, name, roles, admin);
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

    function _propose(uint8 action, bytes32 orgId, bytes32 proposerOrg) private returns (bytes32 proposalId) {
        proposalId = keccak256(abi.encode(block.chainid, address(this), action, orgId, ++_proposalNonce));
        Proposal storage p = _proposals[proposalId];
        p.orgId = orgId;
        p.action = action;
        p.epoch = _orgs[orgId].epoch;
        emit ProposalCreated(proposalId, action, orgId, proposerOrg);
        _vote(proposalId, p, proposerOrg);
    }

    function _vote(bytes32 proposalId, Proposal storage p, bytes32 voterOrg) private {
        bytes32 orgId = p.orgId;
        uint8 action = p.action;
        Org storage target = _orgs[orgId];
        uint256 eligible = activeOrgCount;
        if (action == ACTION_ADMIT) {
            if (target.status != OrgStatus.Proposed) revert OrgNotProposed(orgId);
        } else if (action == ACTION_SUSPEND) {
            if (target.status != OrgStatus.Active) revert OrgNotActive(orgId);
            if (voterOrg == orgId) revert CannotVoteOnOwnSuspension(orgId);
            eligible -= 1; // the target is active but may not vote
        } else {
            if (target.status != OrgStatus.Suspended) revert OrgNotSuspended(orgId);
        }
        if (p.epoch != target.epoch) revert ProposalSuperseded(proposalId);
        if (!_recordVote(proposalId, voterOrg)) revert AlreadyVoted(proposalId, voterOrg);

        uint32 votes = p.votes + 1;
        p.votes = votes;
        uint256 required = _requiredVotes(eligible, thresholdPercent);
        emit VoteCast(proposalId, voterOrg, votes, required);
        if (votes < required) return;

        p.executed = true;
        emit ProposalExecuted(proposalId);
        target.epoch += 1;
        if (action == ACTION_SUSPEND) {
            target.status = OrgStatus.Suspended;
            activeOrgCount -= 1;
            emit OrgSuspended(orgId);
        } else {
            target.status = OrgStatus.Active;
            activeOrgCount += 1;
            if (action == ACTION_ADMIT) emit OrgAdmitted(orgId);
            else emit OrgReinstated(orgId);
        }
    }
}
