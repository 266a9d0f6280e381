// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./IConsortium.sol";

/**
 * @title AnchorLog
 * @notice Append-only Merkle checkpoints of high-volume off-chain logs (a node's evidence
 * log, blacklist query logs, the auditor's own query log): `(logId, treeSize, rootHash)`
 * with treeSize strictly increasing per log, like a transparency log's signed tree head.
 * Consistency between checkpoints is proven off chain (RFC 9162 consistency proofs).
 * A log is created by its owner, with its first checkpoint ({createLog}); its id is
 * derived from the owner's account and its name for the log ({logIdFor}), so no account
 * can create, occupy or advance another account's log. Later checkpoints ({checkpoint})
 * come from the owner only.
 * @dev Storage keeps only the latest checkpoint and the owner of each log; the history
 * is the {Checkpointed} event stream.
 */
contract AnchorLog {
    struct Log {
        address owner;
        uint64 treeSize;
        bytes32 rootHash;
    }

    /// @notice Domain separator of log ids, see {logIdFor}.
    string public constant LOG_ID_DOMAIN = "provnet:log:v1";

    /// @notice The consortium whose members may write.
    IConsortium public immutable consortium;

    mapping(bytes32 logId => Log) private _logs;

    /**
     * @notice A log was created with its first checkpoint; its creator owns it.
     * @param logId The log, `logIdFor(owner, name)`.
     * @param owner The only account that may append to it.
     * @param ownerOrg The owner's organisation.
     * @param name The owner's name for the log.
     */
    event LogCreated(bytes32 indexed logId, address indexed owner, bytes32 indexed ownerOrg, bytes32 name);

    /**
     * @notice A checkpoint was appended.
     * @param logId The log.
     * @param treeSize Number of leaves covered.
     * @param rootHash RFC 9162 Merkle tree head over those leaves.
     * @param writer The log's owner.
     */
    event Checkpointed(bytes32 indexed logId, uint64 treeSize, bytes32 rootHash, address indexed writer);

    /// @notice The log name is zero.
    error InvalidLogName();

    /// @notice The caller already created a log under this name.
    /// @param logId The existing log.
    error LogAlreadyExists(bytes32 logId);

    /// @notice No such log.
    /// @param logId The log.
    error UnknownLog(bytes32 logId);

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
     * @notice Creates the caller's log `logIdFor(msg.sender, name)` with its first checkpoint.
     * @dev Caller: admin or active node of an Active organisation; it owns the log.
     * @param name Non-zero name of the log, unique per owner account.
     * @param treeSize Non-zero leaf count.
     * @param rootHash Non-zero Merkle tree head.
     * @return logId The new log's id.
     */
    function createLog(bytes32 name, uint64 treeSize, bytes32 rootHash) external returns (bytes32 logId) {
        bytes32 orgId = consortium.activeMemberOrg(msg.sender);
        if (name == bytes32(0)) revert InvalidLogName();
        if (treeSize == 0 || rootHash == bytes32(0)) revert InvalidCheckpoint();
        logId = logIdFor(msg.sender, name);
        Log storage log = _logs[logId];
        if (log.owner != address(0)) revert LogAlreadyExists(logId);
        log.owner = msg.sender;
        log.treeSize = treeSize;
        log.rootHash = rootHash;
        emit LogCreated(logId, msg.sender, orgId, name);
        emit Checkpointed(logId, treeSize, rootHash, msg.sender);
    }

    /**
     * @notice Appends a checkpoint to an existing log.
     * @dev Caller: the log's owner, still an admin or active node of an Active organisation.
     * @param logId The log, created with {createLog}.
     * @param treeSize Non-zero leaf count, above the previous checkpoint's.
     * @param rootHash Non-zero Merkle tree head.
     */
    function checkpoint(bytes32 logId, uint64 treeSize, bytes32 rootHash) external {
        consortium.activeMemberOrg(msg.sender); // reverts unless an active member now
        if (treeSize == 0 || rootHash == bytes32(0)) revert InvalidCheckpoint();
        Log storage log = _logs[logId];
        address owner = log.owner;
        if (owner == address(0)) revert UnknownLog(logId);
        if (owner != msg.sender) revert NotLogOwner(logId, msg.sender);
        if (treeSize <= log.treeSize) revert TreeSizeNotIncreasing(logId, log.treeSize, treeSize);
        log.treeSize = treeSize;
        log.rootHash = rootHash;
        emit Checkpointed(logId, treeSize, rootHash, msg.sender);
    }

    /**
     * @notice The id of the log an account creates under a name.
     * @param owner The creating account.
     * @param name The account's name for the log.
     * @return `keccak256(abi.encode("provnet:log:v1", owner, name))`.
     */
    function logIdFor(address owner, bytes32 name) public pure returns (bytes32) {
        return keccak256(abi.encode(LOG_ID_DOMAIN, owner, name));
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
