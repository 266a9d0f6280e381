// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IAuthorizationRegistry
 * @notice Grants of dataset use, as the task lifecycle consumes and checks them.
 */
interface IAuthorizationRegistry {
    /**
     * @notice Consumes one use of a grant for a task that is starting.
     * @dev Only the bound TaskRegistry may call. Reverts with the grant's error if the
     * grant is unknown, revoked, expired, exhausted, or does not cover this use.
     * @param grantId The grant.
     * @param granteeOrg The organisation that started the task (must be the grantee).
     * @param datasetId The dataset the task reads (must be the grant's).
     * @param algorithmDigest The task's algorithm (must be the grant's, or approved if the grant allows any).
     */
    function consumeUse(bytes32 grantId, bytes32 granteeOrg, bytes32 datasetId, bytes32 algorithmDigest) external;

    /**
     * @notice Whether a grant could be used now: it exists, is not revoked, expired or exhausted.
     * @param grantId The grant.
     * @return True if usable.
     */
    function isUsable(bytes32 grantId) external view returns (bool);

    /**
     * @notice Whether a grant was revoked.
     * @param grantId The grant.
     * @return True if revoked (false if unknown).
     */
    function isRevoked(bytes32 grantId) external view returns (bool);

    /**
     * @notice Everything stored about a grant (purpose and grantor are in the creation event).
     * @dev Reverts with `UnknownGrant(grantId)` if the grant does not exist.
     * @param grantId The grant.
     * @return datasetId The dataset.
     * @return granteeOrg The organisation allowed to use it.
     * @return algorithmDigest The only algorithm allowed, or zero for any approved algorithm.
     * @return notAfter Last timestamp (inclusive) at which a use may be consumed.
     * @return maxUses Uses allowed.
     * @return used Uses consumed so far.
     * @return revoked Whether the grant was revoked.
     */
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
        );
}
