// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IAlgorithmRegistry} from "./IAlgorithmRegistry.sol";
import {IAuthorizationRegistry} from "./IAuthorizationRegistry.sol";
import {IConsortium} from "./IConsortium.sol";
import {IDatasetRegistry} from "./IDatasetRegistry.sol";

/**
 * @title AuthorizationRegistry
 * @notice Grants by which a dataset's owner lets another organisation use the dataset:
 * for one algorithm (or any approved one), a purpose, until a time, a number of times.
 * A use is consumed by the `TaskRegistry` when a task naming the grant is accepted, or
 * settled in bulk by the dataset's owner for a metered service that runs outside tasks
 * (anonymous lookups, {settleUses}), which makes data use controllable and metered;
 * revocation is immediate and also stops running tasks at their next on-chain step.
 * @dev `Ownable` serves only the one-time {bindTaskRegistry}, which renounces ownership.
 * The grantor organisation is always the dataset's owner (which never changes), so it
 * is not stored; purpose is in the {GrantCreated} event only.
 */
contract AuthorizationRegistry is IAuthorizationRegistry, Ownable {
    struct Grant {
        bytes32 datasetId;
        bytes32 granteeOrg;
        bytes32 algorithmDigest;
        uint64 notAfter;
        uint32 maxUses;
        uint32 used;
        bool revoked;
    }

    /// @notice The consortium whose members grant and receive grants.
    IConsortium public immutable consortium;
    /// @notice Where datasets and their owners are registered.
    IDatasetRegistry public immutable datasets;
    /// @notice Where algorithms are approved.
    IAlgorithmRegistry public immutable algorithms;

    /// @notice The only contract allowed to consume uses; zero until bound.
    address public taskRegistry;

    uint256 private _nonce;
    mapping(bytes32 grantId => Grant) private _grants;
    mapping(bytes32 settlement => bool) private _settled;

    /**
     * @notice The TaskRegistry was bound (ownership is renounced in the same transaction).
     * @param taskRegistry The TaskRegistry.
     */
    event TaskRegistryBound(address taskRegistry);

    /**
     * @notice A grant was created.
     * @param grantId The grant.
     * @param datasetId The dataset.
     * @param granteeOrg The organisation allowed to use it.
     * @param grantorOrg The dataset's owner.
     * @param algorithmDigest The only algorithm allowed, or zero for any approved algorithm.
     * @param purpose Purpose code.
     * @param notAfter Last timestamp (inclusive) at which a use may be consumed.
     * @param maxUses Uses allowed.
     */
    event GrantCreated(
        bytes32 indexed grantId,
        bytes32 indexed datasetId,
        bytes32 indexed granteeOrg,
        bytes32 grantorOrg,
        bytes32 algorithmDigest,
        bytes32 purpose,
        uint64 notAfter,
        uint32 maxUses
    );

    /**
     * @notice A grant was revoked.
     * @param grantId The grant.
     * @param byOrg The revoking (dataset owner) organisation.
     */
    event GrantRevoked(bytes32 indexed grantId, bytes32 byOrg);

    /**
     * @notice One use of a grant was consumed by a starting task.
     * @param grantId The grant.
     * @param used Uses consumed, this one included.
     * @param maxUses Uses allowed.
     */
    event GrantUsed(bytes32 indexed grantId, uint32 used, uint32 maxUses);

    /**
     * @notice Uses consumed outside tasks were settled by the dataset's owner (emitted
     * after the {GrantUsed} of the same call).
     * @param grantId The grant.
     * @param uses Uses settled by this call.
     * @param settlement Digest of the owner's off-chain settlement record (period, counts,
     * query-log checkpoint); each settles once.
     * @param byOrg The settling (dataset owner) organisation.
     */
    event UsesSettled(bytes32 indexed grantId, uint32 uses, bytes32 indexed settlement, bytes32 byOrg);

    /// @notice The TaskRegistry is already bound.
    error TaskRegistryAlreadyBound();

    /// @notice The TaskRegistry address is zero.
    error InvalidTaskRegistry();

    /// @notice Only the bound TaskRegistry may consume uses.
    /// @param caller The caller.
    error NotTaskRegistry(address caller);

    /// @notice The caller's organisation does not own the dataset.
    /// @param datasetId The dataset.
    /// @param orgId The caller's organisation.
    error NotDatasetOwner(bytes32 datasetId, bytes32 orgId);

    /// @notice The dataset is retired.
    /// @param datasetId The dataset.
    error DatasetIsRetired(bytes32 datasetId);

    /// @notice The organisation is not Active.
    /// @param orgId The organisation.
    error OrgNotActive(bytes32 orgId);

    /// @notice The algorithm is not approved.
    /// @param digest The algorithm digest.
    error AlgorithmNotApproved(bytes32 digest);

    /// @notice The expiry is not in the future.
    /// @param notAfter The rejected expiry.
    error InvalidExpiry(uint64 notAfter);

    /// @notice The maximum number of uses is zero.
    error InvalidMaxUses();

    /// @notice No such grant.
    /// @param grantId The grant.
    error UnknownGrant(bytes32 grantId);

    /// @notice The grant is already revoked.
    /// @param grantId The grant.
    error GrantAlreadyRevoked(bytes32 grantId);

    /// @notice The grant is revoked.
    /// @param grantId The grant.
    error GrantIsRevoked(bytes32 grantId);

    /// @notice The grant has expired.
    /// @param grantId The grant.
    /// @param notAfter Its expiry.
    error GrantExpired(bytes32 grantId, uint64 notAfter);

    /// @notice Every use of the grant is consumed.
    /// @param grantId The grant.
    error GrantExhausted(bytes32 grantId);

    /// @notice The grant is not for this organisation.
    /// @param grantId The grant.
    /// @param orgId The organisation that tried to use it.
    error WrongGrantee(bytes32 grantId, bytes32 orgId);

    /// @notice The grant is not for this dataset.
    /// @param grantId The grant.
    /// @param datasetId The dataset it was used for.
    error WrongDataset(bytes32 grantId, bytes32 datasetId);

    /// @notice A settlement must settle at least one use.
    error InvalidUses();

    /// @notice The settlement digest is zero or already settled.
    /// @param settlement The settlement digest.
    error SettlementAlreadyRecorded(bytes32 settlement);

    /// @notice The grant does not allow this algorithm.
    /// @param grantId The grant.
    /// @param algorithmDigest The algorithm it was used for.
    error AlgorithmNotAllowed(bytes32 grantId, bytes32 algorithmDigest);

    /**
     * @notice Deploys the registry; the deployer may bind the TaskRegistry once.
     * @param consortium_ The consortium.
     * @param datasets_ The dataset registry.
     * @param algorithms_ The algorithm registry.
     */
    constructor(IConsortium consortium_, IDatasetRegistry datasets_, IAlgorithmRegistry algorithms_)
        Ownable(msg.sender)
    {
        consortium = consortium_;
        datasets = datasets_;
        algorithms = algorithms_;
    }

    /**
     * @notice Binds the TaskRegistry that alone may consume uses, and renounces ownership.
     * @dev Owner only, once.
     * @param taskRegistry_ The TaskRegistry.
     */
    function bindTaskRegistry(address taskRegistry_) external {
        if (taskRegistry != address(0)) revert TaskRegistryAlreadyBound();
        _checkOwner();
        if (taskRegistry_ == address(0)) revert InvalidTaskRegistry();
        taskRegistry = taskRegistry_;
        emit TaskRegistryBound(taskRegistry_);
        _transferOwnership(address(0));
    }

    /**
     * @notice Grants an organisation use of a dataset.
     * @dev Caller: admin or active node of the dataset's owner (an Active organisation).
     * @param datasetId The dataset; must exist and not be retired.
     * @param granteeOrg An Active organisation.
     * @param algorithmDigest The only algorithm allowed (approved now), or zero for any approved algorithm.
     * @param purpose Purpose code (event only).
     * @param notAfter Last timestamp (inclusive) at which a use may be consumed; in the future.
     * @param maxUses Uses allowed; non-zero.
     * @return grantId The new grant: keccak256(abi.encode(chainid, this, datasetId, granteeOrg, nonce)).
     */
    function grant(
        bytes32 datasetId,
        bytes32 granteeOrg,
        bytes32 algorithmDigest,
        bytes32 purpose,
        uint64 notAfter,
        uint32 maxUses
    ) external returns (bytes32 grantId) {
        bytes32 grantorOrg = _requireDatasetOwner(datasetId);
        if (datasets.isRetired(datasetId)) revert DatasetIsRetired(datasetId);
        if (!consortium.isActiveOrg(granteeOrg)) revert OrgNotActive(granteeOrg);
        if (algorithmDigest != bytes32(0) && !algorithms.isApproved(algorithmDigest)) {
            revert AlgorithmNotApproved(algorithmDigest);
        }
        if (notAfter <= block.timestamp) revert InvalidExpiry(notAfter);
        if (maxUses == 0) revert InvalidMaxUses();

        grantId = keccak256(abi.encode(block.chainid, address(this), datasetId, granteeOrg, _nonce++));
        Grant storage g = _grants[grantId];
        g.datasetId = datasetId;
        g.granteeOrg = granteeOrg;
        if (algorithmDigest != bytes32(0)) g.algorithmDigest = algorithmDigest;
        g.notAfter = notAfter;
        g.maxUses = maxUses;
        emit GrantCreated(grantId, datasetId, granteeOrg, grantorOrg, algorithmDigest, purpose, notAfter, maxUses);
    }

    /**
     * @notice Revokes a grant, for good; tasks naming it can no longer start, and running ones fail.
     * @dev Caller: admin or active node of the dataset's owner (an Active organisation).
     * @param grantId The grant.
     */
    function revoke(bytes32 grantId) external {
        Grant storage g = _grants[grantId];
        bytes32 datasetId = g.datasetId;
        if (datasetId == bytes32(0)) revert UnknownGrant(grantId);
        bytes32 byOrg = _requireDatasetOwner(datasetId);
        if (g.revoked) revert GrantAlreadyRevoked(grantId);
        g.revoked = true;
        emit GrantRevoked(grantId, byOrg);
    }

    /// @inheritdoc IAuthorizationRegistry
    function consumeUse(bytes32 grantId, bytes32 granteeOrg, bytes32 datasetId, bytes32 algorithmDigest) external {
        if (msg.sender != taskRegistry || msg.sender == address(0)) revert NotTaskRegistry(msg.sender);
        Grant storage g = _grants[grantId];
        if (g.datasetId == bytes32(0)) revert UnknownGrant(grantId);
        if (g.revoked) revert GrantIsRevoked(grantId);
        if (block.timestamp > g.notAfter) revert GrantExpired(grantId, g.notAfter);
        uint32 used = g.used;
        uint32 maxUses = g.maxUses;
        if (used >= maxUses) revert GrantExhausted(grantId);
        if (g.granteeOrg != granteeOrg) revert WrongGrantee(grantId, granteeOrg);
        if (g.datasetId != datasetId) revert WrongDataset(grantId, datasetId);
        bytes32 allowed = g.algorithmDigest;
        if (allowed == bytes32(0) ? !algorithms.isApproved(algorithmDigest) : allowed != algorithmDigest) {
            revert AlgorithmNotAllowed(grantId, algorithmDigest);
        }
        unchecked {
            ++used;
        }
        g.used = used;
        emit GrantUsed(grantId, used, maxUses);
    }

    /**
     * @notice Settles `uses` uses of a grant consumed by a metered service outside tasks,
     * such as anonymous lookups, whose relay counts queries and settles them per quota
     * block or period so that no chain write follows a single query.
     * @dev Caller: admin or active node of the dataset's owner. Revocation and expiry are
     * not checked: they stop new use, which the service enforces when it serves a query
     * (through {isUsable}); uses consumed before them must still be settleable. A
     * settlement digest settles at most once, so a retried settlement cannot charge twice.
     * @param grantId The grant.
     * @param uses Uses to add; non-zero, and the total may not exceed `maxUses`.
     * @param settlement Digest of the off-chain settlement record; non-zero, unused.
     */
    function settleUses(bytes32 grantId, uint32 uses, bytes32 settlement) external {
        Grant storage g = _grants[grantId];
        bytes32 datasetId = g.datasetId;
        if (datasetId == bytes32(0)) revert UnknownGrant(grantId);
        bytes32 byOrg = _requireDatasetOwner(datasetId);
        if (uses == 0) revert InvalidUses();
        if (settlement == bytes32(0) || _settled[settlement]) revert SettlementAlreadyRecorded(settlement);
        uint256 used = uint256(g.used) + uses;
        if (used > g.maxUses) revert GrantExhausted(grantId);
        g.used = uint32(used);
        _settled[settlement] = true;
        emit GrantUsed(grantId, uint32(used), g.maxUses);
        emit UsesSettled(grantId, uses, settlement, byOrg);
    }

    /**
     * @notice Whether a settlement digest was already settled (retry check).
     * @param settlement The settlement digest.
     * @return True once {settleUses} recorded it.
     */
    function isSettled(bytes32 settlement) external view returns (bool) {
        return _settled[settlement];
    }

    /// @inheritdoc IAuthorizationRegistry
    function isUsable(bytes32 grantId) external view returns (bool) {
        Grant storage g = _grants[grantId];
        return g.datasetId != bytes32(0) && !g.revoked && block.timestamp <= g.notAfter && g.used < g.maxUses;
    }

    /// @inheritdoc IAuthorizationRegistry
    function isRevoked(bytes32 grantId) external view returns (bool) {
        return _grants[grantId].revoked;
    }

    /// @inheritdoc IAuthorizationRegistry
    function grantInfo(bytes32 grantId)
        external
        view
        returns (
            bytes32 datasetId,
            bytes32 granteeOrg,
            bytes32 algorithmDigest,
            uint64 notAfter,
            uint32 maxUses,
            uint32 used,
            bool revoked
        )
    {
        Grant storage g = _grants[grantId];
        if (g.datasetId == bytes32(0)) revert UnknownGrant(grantId);
        return (g.datasetId, g.granteeOrg, g.algorithmDigest, g.notAfter, g.maxUses, g.used, g.revoked);
    }

    /// @dev The caller's organisation, which must be active and own `datasetId` (which must exist).
    function _requireDatasetOwner(bytes32 datasetId) private view returns (bytes32 orgId) {
        orgId = consortium.activeMemberOrg(msg.sender);
        if (datasets.datasetOwner(datasetId) != orgId) revert NotDatasetOwner(datasetId, orgId);
    }
}
