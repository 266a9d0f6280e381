// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IAlgorithmRegistry
 * @notice The consortium's list of trusted algorithms, as the other provnet contracts read it.
 */
interface IAlgorithmRegistry {
    /**
     * @notice Whether an algorithm is approved right now (approved by vote and not deprecated).
     * @param digest The algorithm digest (SHA-256 of its canonical package).
     * @return True if approved.
     */
    function isApproved(bytes32 digest) external view returns (bool);
}
