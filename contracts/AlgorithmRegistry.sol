// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAlgorithmRegistry} from "./IAlgorithmRegistry.sol";
import {IConsortium} from "./IConsortium.sol";
import {ConsortiumVoting} from "./ConsortiumVoting.sol";
import {ROLE_REGULATOR} from "./Roles.sol";

/**
 * @title AlgorithmRegistry
 * @notice The consortium's trusted algorithms, identified by the digest of their
 * canonical package. Approval and deprecation are ballots of {ConsortiumVoting} with the
 * settings and electorate of `Consortium`: a majority of all non-removed members and at
 * least `minApprovals` distinct organisations, then the timelock (objections, regulator
 * veto), then {execute}.
 * @dev Name and version live in the {AlgorithmProposed} event only; storage keeps one
 * packed slot per algorithm (status, kind, proposal round). At most one proposal per
 * digest is open: an approval while the algorithm is Proposed, a deprecation while it is
 * Approved. An approval that dies (expired, vetoed, cancelled) returns the digest to None,
 * so it can be proposed again.
 */
contract AlgorithmRegistry is IAlgorithmRegistry, ConsortiumVoting {
    /// @notice Family of protocol an algorithm implements.
    enum AlgorithmKind {
        PSI,
        PIR,
        MPC,
        FL,
        TEE,
        OTHER
    }

    /// @notice Lifecycle of an algorithm. `Deprecated` is final.
    enum AlgorithmStatus {
        None,
        Proposed,
        Approved,
        Deprecated
    }

    struct Algorithm {
        AlgorithmStatus status;
        AlgorithmKind kind;
        // Bumped for every proposal about the digest; the open proposal is the latest round.
        uint32 round;
        // The round whose approval was executed (zero until Approved).
        uint32 approvalRound;
    }

    /// @notice The consortium whose active admins vote here.
    IConsortium public immutable consortium;

    mapping(bytes32 digest => Algorithm) private _algorithms;
    mapping(bytes32 proposalId => bytes32 digest) private _proposalDigest;

    /**
     * @notice An algorithm was proposed for approval (the proposer's vote follows as {VoteCast}).
     * @param digest The algorithm digest.
     * @param name Human-readable name.
     * @param version Human-readable version.
     * @param kind The {AlgorithmKind}, as uint8.
     * @param proposerOrg The proposing organisation.
     * @param proposalId The approval proposal.
     */
    event AlgorithmProposed(
        bytes32 indexed digest, string name, string version, uint8 kind, bytes32 proposerOrg, bytes32 proposalId
    );

    /**
     * @notice A deprecation of an Approved algorithm was proposed (the proposer's vote follows as {VoteCast}).
     * @param digest The algorithm digest.
     * @param proposerOrg The proposing organisation.
     * @param proposalId The deprecation proposal.
     */
    event DeprecationProposed(bytes32 indexed digest, bytes32 proposerOrg, bytes32 proposalId);

    /**
     * @notice An algorithm became Approved.
     * @param digest The algorithm digest.
     */
    event AlgorithmApproved(bytes32 indexed digest);

    /**
     * @notice An algorithm became Deprecated, for good.
     * @param digest The algorithm digest.
     */
    event AlgorithmDeprecated(bytes32 indexed digest);

    /**
     * @notice An approval proposal died (expired, vetoed or cancelled): the digest may be proposed again.
     * @param digest The algorithm digest.
     */
    event AlgorithmProposalDropped(bytes32 indexed digest);

    /// @notice The caller is not the admin of an Active organisation.
    /// @param account The caller.
    error NotActiveMemberAdmin(address account);

    /// @notice The digest is zero.
    error InvalidDigest();

    /// @notice The digest was already proposed.
    /// @param digest The algorithm digest.
    error AlgorithmAlreadyExists(bytes32 digest);

    /// @notice The algorithm is not awaiting approval.
    /// @param digest The algorithm digest.
    error AlgorithmNotProposed(bytes32 digest);

    /// @notice The algorithm is not Approved.
    /// @param digest The algorithm digest.
    error AlgorithmNotApproved(bytes32 digest);

    /// @notice The organisation has already voted on this question for this algorithm.
    /// @param digest The algorithm digest.
    /// @param orgId The voting organisation.
    error AlreadyVoted(bytes32 digest, bytes32 orgId);

    /// @notice A deprecation of this algorithm is already proposed; vote with {voteDeprecation}.
    /// @param digest The algorithm digest.
    error DeprecationAlreadyProposed(bytes32 digest);

    /// @notice No deprecation of this algorithm is proposed; start one with {proposeDeprecation}.
    /// @param digest The algorithm digest.
    error DeprecationNotProposed(bytes32 digest);

    /**
     * @notice Deploys the registry for a consortium.
     * @param consortium_ The consortium whose active admins vote, and whose governance settings apply.
     */
    constructor(IConsortium consortium_) {
        consortium = consortium_;
    }

    /**
     * @notice Proposes an algorithm for approval; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation.
     * @param digest Non-zero, new algorithm digest (SHA-256 of its canonical package).
     * @param name Human-readable name (event only).
     * @param version Human-readable version (event only).
     * @param kind Protocol family.
     * @return proposalId The approval proposal.
     */
    function proposeAlgorithm(bytes32 digest, string calldata name, string calldata version, AlgorithmKind kind)
        external
        returns (bytes32 proposalId)
    {
        bytes32 orgId = _callerOrg();
        if (digest == bytes32(0)) revert InvalidDigest();
        Algorithm storage a = _algorithms[digest];
        if (a.status == AlgorithmStatus.Proposed && _holdsSubject(_proposalOf(digest, a))) {
            revert AlgorithmAlreadyExists(digest);
        }
        if (a.status != AlgorithmStatus.None) revert AlgorithmAlreadyExists(digest);
        a.status = AlgorithmStatus.Proposed;
        a.kind = kind;
        proposalId = _newProposal(digest, a);
        emit AlgorithmProposed(digest, name, version, uint8(kind), orgId, proposalId);
        _castVote(proposalId, orgId);
    }

    /**
     * @notice Votes to approve a Proposed algorithm; its proposal is queued (or, with a zero
     * timelock, executed) when the quorum is reached.
     * @dev Caller: admin of an Active organisation.
     * @param digest The algorithm digest.
     */
    function approveAlgorithm(bytes32 digest) external {
        bytes32 orgId = _callerOrg();
        Algorithm storage a = _algorithms[digest];
        if (a.status != AlgorithmStatus.Proposed) revert AlgorithmNotProposed(digest);
        _castVote(_proposalOf(digest, a), orgId);
    }

    /**
     * @notice Proposes deprecating an Approved algorithm; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation. At most one deprecation is open per algorithm.
     * @param digest The algorithm digest.
     * @return proposalId The deprecation proposal.
     */
    function proposeDeprecation(bytes32 digest) external returns (bytes32 proposalId) {
        bytes32 orgId = _callerOrg();
        Algorithm storage a = _algorithms[digest];
        if (a.status != AlgorithmStatus.Approved) revert AlgorithmNotApproved(digest);
        if (_holdsSubject(_proposalOf(digest, a))) revert DeprecationAlreadyProposed(digest);
        proposalId = _newProposal(digest, a);
        emit DeprecationProposed(digest, orgId, proposalId);
        _castVote(proposalId, orgId);
    }

    /**
     * @notice Votes for an open deprecation; it is queued (or executed) when the quorum is reached.
     * @dev Caller: admin of an Active organisation.
     * @param digest The algorithm digest.
     */
    function voteDeprecation(bytes32 digest) external {
        bytes32 orgId = _callerOrg();
        Algorithm storage a = _algorithms[digest];
        if (a.status != AlgorithmStatus.Approved) revert AlgorithmNotApproved(digest);
        if (!_deprecationRound(a)) revert DeprecationNotProposed(digest);
        _castVote(_proposalOf(digest, a), orgId);
    }

    /// @inheritdoc IAlgorithmRegistry
    function isApproved(bytes32 digest) external view returns (bool) {
        return _algorithms[digest].status == AlgorithmStatus.Approved;
    }

    /**
     * @notice Lifecycle status of an algorithm.
     * @param digest The algorithm digest.
     * @return The status (None if unknown).
     */
    function algorithmStatus(bytes32 digest) external view returns (AlgorithmStatus) {
        return _algorithms[digest].status;
    }

    /**
     * @notice Protocol family of an algorithm.
     * @param digest The algorithm digest.
     * @return The kind (PSI, the zero value, if unknown: check {algorithmStatus} first).
     */
    function algorithmKind(bytes32 digest) external view returns (AlgorithmKind) {
        return _algorithms[digest].kind;
    }

    /**
     * @notice The latest proposal about an algorithm (its approval while Proposed, its
     * deprecation, if one was proposed, while Approved).
     * @param digest The algorithm digest.
     * @return The proposal id, zero if none was ever made (check {proposalState}).
     */
    function latestProposal(bytes32 digest) public view returns (bytes32) {
        Algorithm storage a = _algorithms[digest];
        return a.round == 0 ? bytes32(0) : _proposalOf(digest, a);
    }

    /**
     * @notice Votes cast on an algorithm's current (or carried) approval and on its latest deprecation.
     * @param digest The algorithm digest.
     * @return approvalVotes Votes to approve.
     * @return deprecationVotes Votes to deprecate.
     */
    function algorithmVotes(bytes32 digest) external view returns (uint256 approvalVotes, uint256 deprecationVotes) {
        Algorithm storage a = _algorithms[digest];
        bytes32 approval = _approvalProposal(digest, a);
        if (approval != bytes32(0)) approvalVotes = _votes(approval);
        if (_deprecationRound(a)) deprecationVotes = _votes(_proposalOf(digest, a));
    }

    /**
     * @notice Whether an organisation voted on an algorithm's current approval or deprecation.
     * @param digest The algorithm digest.
     * @param orgId The organisation.
     * @param deprecation True for the deprecation question, false for approval.
     * @return True if it voted on the latest proposal of that kind.
     */
    function hasVoted(bytes32 digest, bytes32 orgId, bool deprecation) external view returns (bool) {
        Algorithm storage a = _algorithms[digest];
        bytes32 proposalId;
        if (deprecation) {
            if (_deprecationRound(a)) proposalId = _proposalOf(digest, a);
        } else {
            proposalId = _approvalProposal(digest, a);
        }
        return proposalId != bytes32(0) && _hasVoted(proposalId, orgId);
    }

    // ------------------------------------------------------------------- internal

    function _settings() internal view override returns (Settings memory) {
        IConsortium.Governance memory g = consortium.governance();
        return Settings(g.thresholdPercent, g.minApprovals, g.proposalLifetime, g.timelockDelay, consortium.memberCount());
    }

    function _callerOrg() internal view override returns (bytes32 orgId) {
        orgId = consortium.activeAdminOrg(msg.sender);
        if (orgId == bytes32(0)) revert NotActiveMemberAdmin(msg.sender);
    }

    function _isRegulator(bytes32 orgId) internal view override returns (bool) {
        return consortium.hasRole(orgId, ROLE_REGULATOR);
    }

    function _checkParticipant(bytes32, bytes32) internal view override {}

    function _revertAlreadyVoted(bytes32 proposalId, bytes32 orgId) internal view override {
        revert AlreadyVoted(_proposalDigest[proposalId], orgId);
    }

    function _apply(bytes32 proposalId) internal override {
        bytes32 digest = _proposalDigest[proposalId];
        Algorithm storage a = _algorithms[digest];
        if (a.status == AlgorithmStatus.Proposed) {
            a.status = AlgorithmStatus.Approved;
            a.approvalRound = a.round;
            emit AlgorithmApproved(digest);
        } else {
            a.status = AlgorithmStatus.Deprecated;
            emit AlgorithmDeprecated(digest);
        }
    }

    function _release(bytes32 proposalId) internal override {
        bytes32 digest = _proposalDigest[proposalId];
        Algorithm storage a = _algorithms[digest];
        if (a.status == AlgorithmStatus.Proposed) {
            a.status = AlgorithmStatus.None;
            emit AlgorithmProposalDropped(digest);
        }
    }

    function _newProposal(bytes32 digest, Algorithm storage a) private returns (bytes32 proposalId) {
        a.round += 1;
        proposalId = _proposalOf(digest, a);
        _proposalDigest[proposalId] = digest;
        _openBallot(proposalId);
    }

    function _proposalOf(bytes32 digest, Algorithm storage a) private view returns (bytes32) {
        return _proposalAt(digest, a.round);
    }

    function _proposalAt(bytes32 digest, uint32 round) private view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), digest, round));
    }

    /// @dev The open approval proposal while Proposed, the carried one once Approved or Deprecated, else zero.
    function _approvalProposal(bytes32 digest, Algorithm storage a) private view returns (bytes32) {
        if (a.status == AlgorithmStatus.Proposed) return _proposalOf(digest, a);
        if (a.approvalRound != 0) return _proposalAt(digest, a.approvalRound);
        return bytes32(0);
    }

    /// @dev Whether the latest round of an Approved (or Deprecated) algorithm is a deprecation:
    /// the approval round was executed, so any later round is a deprecation.
    function _deprecationRound(Algorithm storage a) private view returns (bool) {
        return a.approvalRound != 0 && a.round > a.approvalRound;
    }
}
