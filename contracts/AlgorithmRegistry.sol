// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAlgorithmRegistry} from "./IAlgorithmRegistry.sol";
import {IConsortium} from "./IConsortium.sol";
import {ConsortiumVoting} from "./ConsortiumVoting.sol";

/**
 * @title AlgorithmRegistry
 * @notice The consortium's trusted algorithms, identified by the digest of their
 * canonical package. Approval and deprecation are decided by a threshold vote of the
 * admins of Active organisations, with the threshold and electorate of `Consortium`.
 * @dev Name and version live in the {AlgorithmProposed} event only; storage keeps one
 * packed slot per algorithm (status, kind, both vote counts).
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
        uint32 approvalVotes;
        uint32 deprecationVotes;
    }

    /// @notice The consortium whose active admins vote here.
    IConsortium public immutable consortium;

    mapping(bytes32 digest => Algorithm) private _algorithms;

    /**
     * @notice An algorithm was proposed for approval (the proposer's vote follows as {AlgorithmVote}).
     * @param digest The algorithm digest.
     * @param name Human-readable name.
     * @param version Human-readable version.
     * @param kind The {AlgorithmKind}, as uint8.
     * @param proposerOrg The proposing organisation.
     */
    event AlgorithmProposed(bytes32 indexed digest, string name, string version, uint8 kind, bytes32 proposerOrg);

    /**
     * @notice An organisation voted to approve, or to deprecate, an algorithm.
     * @param digest The algorithm digest.
     * @param voterOrg The voting organisation.
     * @param deprecation True for a deprecation vote, false for an approval vote.
     * @param votes Votes on this question after this one.
     * @param required Votes needed at the time of this vote.
     */
    event AlgorithmVote(
        bytes32 indexed digest, bytes32 indexed voterOrg, bool deprecation, uint256 votes, uint256 required
    );

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
     * @param consortium_ The consortium whose active admins vote.
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
     */
    function proposeAlgorithm(bytes32 digest, string calldata name, string calldata version, AlgorithmKind kind)
        external
    {
        bytes32 orgId = _requireActiveAdmin();
        if (digest == bytes32(0)) revert InvalidDigest();
        Algorithm storage a = _algorithms[digest];
        if (a.status != AlgorithmStatus.None) revert AlgorithmAlreadyExists(digest);
        a.status = AlgorithmStatus.Proposed;
        a.kind = kind;
        emit AlgorithmProposed(digest, name, version, uint8(kind), orgId);
        _approvalVote(digest, a, orgId);
    }

    /**
     * @notice Votes to approve a Proposed algorithm; approves it when the threshold is reached.
     * @dev Caller: admin of an Active organisation.
     * @param digest The algorithm digest.
     */
    function approveAlgorithm(bytes32 digest) external {
        bytes32 orgId = _requireActiveAdmin();
        Algorithm storage a = _algorithms[digest];
        if (a.status != AlgorithmStatus.Proposed) revert AlgorithmNotProposed(digest);
        _approvalVote(digest, a, orgId);
    }

    /**
     * @notice Proposes deprecating an Approved algorithm; the caller's vote is cast too.
     * @dev Caller: admin of an Active organisation. At most one deprecation is open per algorithm.
     * @param digest The algorithm digest.
     */
    function proposeDeprecation(bytes32 digest) external {
        bytes32 orgId = _requireActiveAdmin();
        Algorithm storage a = _algorithms[digest];
        if (a.status != AlgorithmStatus.Approved) revert AlgorithmNotApproved(digest);
        if (a.deprecationVotes != 0) revert DeprecationAlreadyProposed(digest);
        _deprecationVote(digest, a, orgId);
    }

    /**
     * @notice Votes for an open deprecation; deprecates the algorithm when the threshold is reached.
     * @dev Caller: admin of an Active organisation.
     * @param digest The algorithm digest.
     */
    function voteDeprecation(bytes32 digest) external {
        bytes32 orgId = _requireActiveAdmin();
        Algorithm storage a = _algorithms[digest];
        if (a.status != AlgorithmStatus.Approved) revert AlgorithmNotApproved(digest);
        if (a.deprecationVotes == 0) revert DeprecationNotProposed(digest);
        _deprecationVote(digest, a, orgId);
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
     * @notice Votes cast so far on an algorithm's approval and on its deprecation.
     * @param digest The algorithm digest.
     * @return approvalVotes Votes to approve.
     * @return deprecationVotes Votes to deprecate.
     */
    function algorithmVotes(bytes32 digest) external view returns (uint256 approvalVotes, uint256 deprecationVotes) {
        Algorithm storage a = _algorithms[digest];
        return (a.approvalVotes, a.deprecationVotes);
    }

    /**
     * @notice Whether an organisation voted on an algorithm's approval or deprecation.
     * @param digest The algorithm digest.
     * @param orgId The organisation.
     * @param deprecation True for the deprecation question, false for approval.
     * @return True if it voted.
     */
    function hasVoted(bytes32 digest, bytes32 orgId, bool deprecation) external view returns (bool) {
        return _hasVoted(_ballot(digest, deprecation), orgId);
    }

    function _requireActiveAdmin() private view returns (bytes32 orgId) {
        orgId = consortium.activeAdminOrg(msg.sender);
        if (orgId == bytes32(0)) revert NotActiveMemberAdmin(msg.sender);
    }

    function _ballot(bytes32 digest, bool deprecation) private pure returns (bytes32) {
        return deprecation ? keccak256(abi.encode("provnet:algorithm-deprecation", digest)) : digest;
    }

    function _required() private view returns (uint256) {
        return _requiredVotes(consortium.activeOrgCount(), consortium.thresholdPercent());
    }

    function _approvalVote(bytes32 digest, Algorithm storage a, bytes32 orgId) private {
        if (!_recordVote(_ballot(digest, false), orgId)) revert AlreadyVoted(digest, orgId);
        uint32 votes = a.approvalVotes + 1;
        a.approvalVotes = votes;
        uint256 required = _required();
        emit AlgorithmVote(digest, orgId, false, votes, required);
        if (votes >= required) {
            a.status = AlgorithmStatus.Approved;
            emit AlgorithmApproved(digest);
        }
    }

    function _deprecationVote(bytes32 digest, Algorithm storage a, bytes32 orgId) private {
        if (!_recordVote(_ballot(digest, true), orgId)) revert AlreadyVoted(digest, orgId);
        uint32 votes = a.deprecationVotes + 1;
        a.deprecationVotes = votes;
        uint256 required = _required();
        emit AlgorithmVote(digest, orgId, true, votes, required);
        if (votes >= required) {
            a.status = AlgorithmStatus.Deprecated;
            emit AlgorithmDeprecated(digest);
        }
    }
}
