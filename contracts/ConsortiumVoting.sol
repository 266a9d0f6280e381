// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title ConsortiumVoting
 * @notice Bookkeeping shared by the contracts in which active organisations decide by
 * threshold vote (admissions and suspensions in `Consortium`, algorithm approvals and
 * deprecations in `AlgorithmRegistry`).
 * @dev One vote per organisation per ballot. Vote counts live in the derived contract's
 * own (packed) records; this base only remembers who voted and computes the quorum.
 * The quorum is computed when a vote is cast, over the organisations eligible at that
 * moment, so admissions and suspensions between votes move the bar. A vote already
 * cast is not withdrawn if its organisation is later suspended.
 */
abstract contract ConsortiumVoting {
    mapping(bytes32 ballotId => mapping(bytes32 orgId => bool)) private _voted;

    /**
     * @dev Records `orgId`'s vote on `ballotId`.
     * @param ballotId The ballot.
     * @param orgId The voting organisation.
     * @return first False if the organisation had already voted on this ballot (nothing recorded).
     */
    function _recordVote(bytes32 ballotId, bytes32 orgId) internal returns (bool first) {
        if (_voted[ballotId][orgId]) return false;
        _voted[ballotId][orgId] = true;
        return true;
    }

    /**
     * @dev Whether `orgId` has voted on `ballotId`.
     * @param ballotId The ballot.
     * @param orgId The organisation.
     * @return True if it has.
     */
    function _hasVoted(bytes32 ballotId, bytes32 orgId) internal view returns (bool) {
        return _voted[ballotId][orgId];
    }

    /**
     * @dev Votes needed to carry a ballot: ceil(eligibleVoters * thresholdPercent / 100), at least 1.
     * @param eligibleVoters Organisations allowed to vote on the ballot now.
     * @param thresholdPercent The consortium's threshold, 1..100.
     * @return required The number of votes that carries the ballot.
     */
    function _requiredVotes(uint256 eligibleVoters, uint256 thresholdPercent) internal pure returns (uint256 required) {
        required = (eligibleVoters * thresholdPercent + 99) / 100;
        if (required == 0) required = 1;
    }
}
