// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./IConsortium.sol";

/**
 * @title AnchorLog
 * @notice Append-only Merkle checkpoints of high-volume off-chain logs (a node's evidence
 * log, blacklist query logs, the auditor's own query log): `(logId, treeSize, rootHash)`
 * with treeSize strictly increasing per log, like a transparency log's signed tree head.
 * Consistency between checkpoints is proven off chain (RFC 9162 consistency proofs).
 * @dev Storage keeps only the latest checkpoint and the owner of each log; the history
 * is the {Checkpointed} event stream.
 */
contract AnchorLog {
    struct Log {
        address owner;
        uint64 treeSize;
        bytes32 rootHash;
    }

    /// @notice The consortium whose members may write.
    IConsortium public immutable consortium;

    mapping(bytes32 logId => Log) private _logs;

    /**
     * @notice A log got its first checkpoint; its writer owns it from now on.
     * @param logId The log.
     * @param owner The only account that may append to it.
     * @param ownerOrg The owner's organisation.
     */
    event LogCreated(bytes32 indexed logId, address indexed owner, bytes32 indexed ownerOrg);

    /**
     * @notice A checkpoint was appended.
     * @param logId The log.
     * @param treeSize Number of leaves covered.
     * @param rootHash RFC 9162 Merkle tree head over those leaves.
     * @param writer The log's owner.
     */
    event Checkpointed(bytes32 indexed logId, uint64 treeSize, bytes32 rootHash, address indexed writer);

    /// @notice The log id is zero.
    error InvalidLogId();

    /// @notice The tree size is zero or the root hash is zero.
    error InvalidCheckpoint();

    /// @notice The log belongs to another account.
    /// @param logId The log.
    /// @param caller The caller.
    error NotLogOwner(bytes32 logId, address caller);

    /// @notice The tree size does not grow.
    /// @param logId The log.
    /// @param previous The last checkpointed tree size.
    /// @param given The tree size given.
    error TreeSizeNotIncreasing(bytes32 logId, uint64 previous, uint64 given);

    /**
     * @notice Deploys the anchor log for a consortium.
     * @param consortium_ The consortium whose members may write.
     */
    constructor(IConsortium consortium_) {
        consortium = consortium_;
    }

    /**
     * @notice Appends a checkpoint to a log, creating the log on its first checkpoint.
     * @dev Caller: admin or active node of an Active organisation; after the first
     * checkpoint, only the account that wrote it.
     * @param logId Non-zero log id.
     * @param treeSize Non-zero leaf count, above the previous checkpoint's.
     * @param rootHash Non-zero Merkle tree head.
     */
    function checkpoint(bytes32 logId, uint64 treeSize, bytes32 rootHash) external {
        bytes32 orgId = consortium.activeMemberOrg(msg.sender);
        if (logId == bytes32(0)) revert InvalidLogId();
        if (treeSize == 0 || rootHash == bytes32(0)) revert InvalidCheckpoint();
        Log storage log = _logs[logId];
        address owner = log.owner;
        if (owner == address(0)) {
            log.owner = msg.sender;
            emit LogCreated(logId, msg.sender, orgId);
        } else {
            if (owner != msg.sender) revert NotLogOwner(logId, msg.sender);
            if (treeSize <= log.treeSize) revert TreeSizeNotIncreasing(logId, log.treeSize, treeSize);
        }
        log.treeSize = treeSize;
        log.rootHash = rootHash;
        emit Checkpointed(logId, treeSize, rootHash, msg.sender);
    }

    /**
     * @notice The latest checkpoint of a log.
     * @param logId The log.
     * @return treeSize Its tree size (0 if the log does not exist).
     * @return rootHash Its root hash.
     */
    function latest(bytes32 logId) external view returns (uint64 treeSize, bytes32 rootHash) {
        Log storage log = _logs[logId];
        return (log.treeSize, log.rootHash);
    }

    /**
     * @notice The account that owns a log.
     * @param logId The log.
     * @return The owner (zero if the log does not exist).
     */
    function logOwner(bytes32 logId) external view returns (address) {
        return _logs[logId].owner;
    }
}
