// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title ConsortiumVoting
 * @notice The proposal lifecycle shared by every ballot of the consortium: admissions,
 * suspensions and reinstatements in `Consortium`, algorithm approvals and deprecations in
 * `AlgorithmRegistry`.
 *
 * A proposal is open for votes until it expires. It carries when it has at least
 * `max(ceil(members x thresholdPercent / 100), minApprovals)` votes of distinct
 * organisations, where `members` counts every non-removed organisation (Active and
 * Suspended, the target of a suspension included), so no single organisation can ever
 * carry a ballot (`minApprovals` is at least 2) and suspending members never lowers the bar.
 *
 * A carried proposal is queued for the timelock. During the timelock any Active member
 * that did not vote for it may object; the proposal is cancelled when `minApprovals`
 * organisations have objected: the number of independent organisations whose agreement
 * is the least that can make a change is also enough to stop it, while one organisation
 * alone can neither make nor stop a change (and an objection cannot be used by the
 * target of a suspension). An Active organisation with the REGULATOR role may veto a
 * proposal, before or during the timelock, unless the proposal is about its own
 * organisation; a vetoed proposal is dead. After the timelock anyone may {execute} the
 * proposal until it expires (a queued proposal expires `lifetime` after its timelock ends).
 * With a zero timelock (development chains and tests only: there is then no window to
 * object or veto after the quorum) the vote that carries a proposal also executes it.
 *
 * @dev Derived contracts supply the settings, the caller's organisation, the rules on who
 * may take part in a given proposal, and the effect. One vote or objection per
 * organisation per proposal. The quorum is computed when a vote is cast, over the members
 * at that moment; a vote already cast stays if its organisation is later suspended.
 */
abstract contract ConsortiumVoting {
    /// @notice Lifecycle of a proposal. Executed, Expired, Vetoed and Cancelled are final.
    enum ProposalState {
        None,
        Voting,
        Queued,
        Executed,
        Expired,
        Vetoed,
        Cancelled
    }

    /// @dev Governance settings as the derived contract reads them.
    struct Settings {
        uint8 thresholdPercent;
        uint8 minApprovals;
        uint64 proposalLifetime;
        uint64 timelockDelay;
        uint256 members;
    }

    struct Ballot {
        ProposalState state;
        uint32 votes;
        uint32 objections;
        uint64 expiresAt;
        uint64 eta;
    }

    mapping(bytes32 proposalId => Ballot) private _ballots;
    mapping(bytes32 proposalId => mapping(bytes32 orgId => bool)) private _voted;
    mapping(bytes32 proposalId => mapping(bytes32 orgId => bool)) private _objected;

    /**
     * @notice An organisation voted for a proposal.
     * @param proposalId The proposal.
     * @param voterOrg The voting organisation.
     * @param votes Votes for the proposal after this one.
     * @param required Votes needed at the time of this vote.
     */
    event VoteCast(bytes32 indexed proposalId, bytes32 indexed voterOrg, uint256 votes, uint256 required);

    /**
     * @notice A proposal reached its quorum and waits for its timelock.
     * @param proposalId The proposal.
     * @param eta Earliest time at which it can be executed.
     * @param expiresAt Time from which it can no longer be executed.
     */
    event ProposalQueued(bytes32 indexed proposalId, uint64 eta, uint64 expiresAt);

    /**
     * @notice A proposal's action was applied.
     * @param proposalId The proposal.
     */
    event ProposalExecuted(bytes32 indexed proposalId);

    /**
     * @notice An organisation objected to a queued proposal.
     * @param proposalId The proposal.
     * @param objectorOrg The objecting organisation.
     * @param objections Objections after this one.
     * @param toCancel Objections that cancel the proposal.
     */
    event ProposalObjected(
        bytes32 indexed proposalId, bytes32 indexed objectorOrg, uint256 objections, uint256 toCancel
    );

    /**
     * @notice A queued proposal was cancelled by objections; it is dead.
     * @param proposalId The proposal.
     */
    event ProposalCancelled(bytes32 indexed proposalId);

    /**
     * @notice A regulator vetoed a proposal; it is dead.
     * @param proposalId The proposal.
     * @param regulatorOrg The vetoing organisation.
     */
    event ProposalVetoed(bytes32 indexed proposalId, bytes32 indexed regulatorOrg);

    /**
     * @notice A proposal was found expired (by {expire} or by a new proposal on the same subject); it is dead.
     * @param proposalId The proposal.
     */
    event ProposalExpired(bytes32 indexed proposalId);

    /// @notice No such proposal.
    /// @param proposalId The proposal.
    error UnknownProposal(bytes32 proposalId);

    /// @notice The proposal is not open for this operation in its current state.
    /// @param proposalId The proposal.
    /// @param state Its state.
    error ProposalNotOpen(bytes32 proposalId, ProposalState state);

    /// @notice The proposal has expired: it can no longer be voted, objected to, vetoed or executed.
    /// @param proposalId The proposal.
    /// @param expiresAt When it expired.
    error ProposalIsExpired(bytes32 proposalId, uint64 expiresAt);

    /// @notice The proposal has not expired yet.
    /// @param proposalId The proposal.
    /// @param expiresAt When it will.
    error ProposalNotExpired(bytes32 proposalId, uint64 expiresAt);

    /// @notice The proposal's timelock has not elapsed yet.
    /// @param proposalId The proposal.
    /// @param eta Earliest execution time.
    error TimelockNotElapsed(bytes32 proposalId, uint64 eta);

    /// @notice The proposal's timelock is over: objections are no longer accepted.
    /// @param proposalId The proposal.
    /// @param eta When the timelock ended.
    error TimelockElapsed(bytes32 proposalId, uint64 eta);

    /// @notice The organisation has already objected to this proposal.
    /// @param proposalId The proposal.
    /// @param orgId The organisation.
    error AlreadyObjected(bytes32 proposalId, bytes32 orgId);

    /// @notice The organisation voted for this proposal and cannot object to it.
    /// @param proposalId The proposal.
    /// @param orgId The organisation.
    error VotedForProposal(bytes32 proposalId, bytes32 orgId);

    /// @notice The caller's organisation does not hold the REGULATOR role.
    /// @param orgId The caller's organisation.
    error NotRegulator(bytes32 orgId);

    // ----------------------------------------------------------------- external

    /**
     * @notice Applies a queued proposal once its timelock has elapsed.
     * @dev Anyone may call. Reverts with {TimelockNotElapsed} before the time and with
     * {ProposalIsExpired} once expired.
     * @param proposalId The proposal.
     */
    function execute(bytes32 proposalId) external {
        Ballot storage b = _existing(proposalId);
        if (b.state != ProposalState.Queued) revert ProposalNotOpen(proposalId, b.state);
        if (block.timestamp < b.eta) revert TimelockNotElapsed(proposalId, b.eta);
        if (block.timestamp >= b.expiresAt) revert ProposalIsExpired(proposalId, b.expiresAt);
        _execute(proposalId, b);
    }

    /**
     * @notice Objects to a queued proposal during its timelock; cancels it at `minApprovals` objections.
     * @dev Caller: admin of an Active organisation that did not vote for the proposal and
     * may take part in it (not the target of a suspension).
     * @param proposalId The proposal.
     */
    function object(bytes32 proposalId) external {
        bytes32 orgId = _callerOrg();
        Ballot storage b = _existing(proposalId);
        if (b.state != ProposalState.Queued) revert ProposalNotOpen(proposalId, b.state);
        if (block.timestamp >= b.eta) revert TimelockElapsed(proposalId, b.eta);
        _checkParticipant(proposalId, orgId);
        if (_voted[proposalId][orgId]) revert VotedForProposal(proposalId, orgId);
        if (_objected[proposalId][orgId]) revert AlreadyObjected(proposalId, orgId);
        _objected[proposalId][orgId] = true;
        uint32 objections = b.objections + 1;
        b.objections = objections;
        uint256 toCancel = _settings().minApprovals;
        emit ProposalObjected(proposalId, orgId, objections, toCancel);
        if (objections >= toCancel) {
            b.state = ProposalState.Cancelled;
            emit ProposalCancelled(proposalId);
            _release(proposalId);
        }
    }

    /**
     * @notice Vetoes a proposal that is being voted or is in its timelock; it is dead.
     * @dev Caller: admin of an Active organisation with the REGULATOR role, not the
     * subject of the proposal (a regulator cannot veto its own suspension).
     * @param proposalId The proposal.
     */
    function veto(bytes32 proposalId) external {
        bytes32 orgId = _callerOrg();
        if (!_isRegulator(orgId)) revert NotRegulator(orgId);
        Ballot storage b = _live(proposalId);
        _checkParticipant(proposalId, orgId);
        b.state = ProposalState.Vetoed;
        emit ProposalVetoed(proposalId, orgId);
        _release(proposalId);
    }

    /**
     * @notice Records that a proposal has expired, freeing its subject for a new proposal.
     * @dev Anyone may call. Reverts with {ProposalNotExpired} before its expiry.
     * @param proposalId The proposal.
     */
    function expire(bytes32 proposalId) external {
        Ballot storage b = _existing(proposalId);
        if (b.state != ProposalState.Voting && b.state != ProposalState.Queued) {
            revert ProposalNotOpen(proposalId, b.state);
        }
        if (block.timestamp < b.expiresAt) revert ProposalNotExpired(proposalId, b.expiresAt);
        _markExpired(proposalId, b);
    }

    // -------------------------------------------------------------------- views

    /**
     * @notice State of a proposal, as of the latest block (an open proposal past its expiry reads Expired).
     * @param proposalId The proposal.
     * @return The state (None if unknown).
     */
    function proposalState(bytes32 proposalId) public view returns (ProposalState) {
        Ballot storage b = _ballots[proposalId];
        if (_isOpen(b.state) && block.timestamp >= b.expiresAt) return ProposalState.Expired;
        return b.state;
    }

    /**
     * @notice Everything recorded about a proposal's ballot.
     * @param proposalId The proposal.
     * @return state As {proposalState}.
     * @return votes Votes for it.
     * @return objections Objections to it.
     * @return expiresAt When it expires (extended to `eta + lifetime` when queued).
     * @return eta Earliest execution time (zero until queued).
     */
    function proposalBallot(bytes32 proposalId)
        external
        view
        returns (ProposalState state, uint256 votes, uint256 objections, uint64 expiresAt, uint64 eta)
    {
        Ballot storage b = _ballots[proposalId];
        return (proposalState(proposalId), b.votes, b.objections, b.expiresAt, b.eta);
    }

    /**
     * @notice Whether an organisation objected to a proposal.
     * @param proposalId The proposal.
     * @param orgId The organisation.
     * @return True if it did.
     */
    function hasObjected(bytes32 proposalId, bytes32 orgId) external view returns (bool) {
        return _objected[proposalId][orgId];
    }

    /**
     * @notice Votes that carry a proposal right now.
     * @return max(ceil(members x thresholdPercent / 100), minApprovals).
     */
    function requiredVotes() public view returns (uint256) {
        return _requiredVotes(_settings());
    }

    // ----------------------------------------------------------------- internal

    /// @dev Settings and current member count.
    function _settings() internal view virtual returns (Settings memory);

    /// @dev The caller's organisation if it is an Active admin; reverts otherwise.
    function _callerOrg() internal view virtual returns (bytes32);

    /// @dev Whether `orgId` holds the REGULATOR role.
    function _isRegulator(bytes32 orgId) internal view virtual returns (bool);

    /// @dev Reverts unless `orgId` may vote, object or veto on `proposalId` now.
    function _checkParticipant(bytes32 proposalId, bytes32 orgId) internal view virtual;

    /// @dev Reverts with the derived contract's AlreadyVoted error.
    function _revertAlreadyVoted(bytes32 proposalId, bytes32 orgId) internal view virtual;

    /// @dev Applies the proposal's effect (and frees its subject).
    function _apply(bytes32 proposalId) internal virtual;

    /// @dev Frees the proposal's subject after it died without effect.
    function _release(bytes32 proposalId) internal virtual;

    /// @dev Opens a new ballot, voting until now + lifetime.
    function _openBallot(bytes32 proposalId) internal returns (uint64 expiresAt) {
        Ballot storage b = _ballots[proposalId];
        expiresAt = uint64(block.timestamp) + _settings().proposalLifetime;
        b.state = ProposalState.Voting;
        b.expiresAt = expiresAt;
    }

    /// @dev Records `orgId`'s vote; queues, or with a zero timelock executes, when carried.
    function _castVote(bytes32 proposalId, bytes32 orgId) internal {
        Ballot storage b = _existing(proposalId);
        if (b.state != ProposalState.Voting) revert ProposalNotOpen(proposalId, b.state);
        if (block.timestamp >= b.expiresAt) revert ProposalIsExpired(proposalId, b.expiresAt);
        _checkParticipant(proposalId, orgId);
        if (_voted[proposalId][orgId]) _revertAlreadyVoted(proposalId, orgId);
        if (_objected[proposalId][orgId]) revert AlreadyObjected(proposalId, orgId);
        _voted[proposalId][orgId] = true;
        uint32 votes = b.votes + 1;
        b.votes = votes;
        Settings memory s = _settings();
        uint256 required = _requiredVotes(s);
        emit VoteCast(proposalId, orgId, votes, required);
        if (votes < required) return;
        if (s.timelockDelay == 0) {
            _execute(proposalId, b);
        } else {
            uint64 eta = uint64(block.timestamp) + s.timelockDelay;
            uint64 expiresAt = eta + s.proposalLifetime;
            b.state = ProposalState.Queued;
            b.eta = eta;
            b.expiresAt = expiresAt;
            emit ProposalQueued(proposalId, eta, expiresAt);
        }
    }

    /**
     * @dev Whether a proposal still holds its subject: open and not past its expiry. An
     * open proposal found past its expiry is marked Expired (with its event) and released.
     */
    function _holdsSubject(bytes32 proposalId) internal returns (bool) {
        Ballot storage b = _ballots[proposalId];
        if (!_isOpen(b.state)) return false;
        if (block.timestamp < b.expiresAt) return true;
        _markExpired(proposalId, b);
        return false;
    }

    /// @dev Whether `orgId` voted for `proposalId`.
    function _hasVoted(bytes32 proposalId, bytes32 orgId) internal view returns (bool) {
        return _voted[proposalId][orgId];
    }

    /// @dev Votes cast for `proposalId`.
    function _votes(bytes32 proposalId) internal view returns (uint256) {
        return _ballots[proposalId].votes;
    }

    /// @dev max(ceil(members x threshold / 100), minApprovals).
    function _requiredVotes(Settings memory s) internal pure returns (uint256 required) {
        required = (s.members * s.thresholdPercent + 99) / 100;
        if (required < s.minApprovals) required = s.minApprovals;
    }

    function _execute(bytes32 proposalId, Ballot storage b) private {
        b.state = ProposalState.Executed;
        emit ProposalExecuted(proposalId);
        _apply(proposalId);
    }

    function _markExpired(bytes32 proposalId, Ballot storage b) private {
        b.state = ProposalState.Expired;
        emit ProposalExpired(proposalId);
        _release(proposalId);
    }

    function _existing(bytes32 proposalId) private view returns (Ballot storage b) {
        b = _ballots[proposalId];
        if (b.state == ProposalState.None) revert UnknownProposal(proposalId);
    }

    function _live(bytes32 proposalId) private view returns (Ballot storage b) {
        b = _existing(proposalId);
        if (!_isOpen(b.state)) revert ProposalNotOpen(proposalId, b.state);
        if (block.timestamp >= b.expiresAt) revert ProposalIsExpired(proposalId, b.expiresAt);
    }

    function _isOpen(ProposalState state) private pure returns (bool) {
        return state == ProposalState.Voting || state == ProposalState.Queued;
    }
}
