// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IConsortium
 * @notice Membership of the provnet consortium as the other provnet contracts read it:
 * organisations (status, roles, governance key) and the node accounts they run.
 * @dev An account is bound to at most one organisation, ever, either as its admin
 * (governance key) or as one of its nodes.
 */
interface IConsortium {
    /// @notice Lifecycle of an organisation.
    enum OrgStatus {
        None,
        Proposed,
        Active,
        Suspended
    }

    /**
     * @notice Governance settings, fixed at deployment.
     * @param thresholdPercent Percentage (1..100) of non-removed members whose votes carry a proposal.
     * @param minApprovals Least number of distinct approving organisations (at least 2); also the
     * number of objections that cancel a proposal in its timelock.
     * @param proposalLifetime Seconds a proposal stays open for votes, and for execution after its timelock.
     * @param timelockDelay Seconds from the quorum to the earliest execution (0: development only).
     */
    struct Governance {
        uint8 thresholdPercent;
        uint8 minApprovals;
        uint64 proposalLifetime;
        uint64 timelockDelay;
    }

    /// @notice Lifecycle of a node account. `Revoked` is final.
    enum NodeStatus {
        None,
        Active,
        Revoked
    }

    /// @notice Lifecycle of an enclave measurement: trusted, then revoked, both by vote. `Revoked` is final.
    enum MeasurementStatus {
        None,
        Trusted,
        Revoked
    }

    /**
     * @notice `account` is neither the admin of an Active organisation nor an Active node
     * of an Active organisation.
     * @param account The account that was checked.
     */
    error NotActiveMember(address account);

    /**
     * @notice Percentage (1..100) of non-removed members (Active and Suspended) whose votes carry a proposal.
     * @return The threshold, in percent.
     */
    function thresholdPercent() external view returns (uint8);

    /**
     * @notice Least number of distinct organisations whose votes carry a proposal (at least 2),
     * and number of objections that cancel a proposal in its timelock.
     * @return The minimum.
     */
    function minApprovals() external view returns (uint8);

    /**
     * @notice Seconds a proposal stays open for votes, and for execution once its timelock has elapsed.
     * @return The lifetime.
     */
    function proposalLifetime() external view returns (uint64);

    /**
     * @notice Seconds between a proposal reaching its quorum and the earliest execution (0: executed by the carrying vote).
     * @return The delay.
     */
    function timelockDelay() external view returns (uint64);

    /**
     * @notice Number of non-removed organisations (Active or Suspended): the electorate of every ballot.
     * @return The count.
     */
    function memberCount() external view returns (uint256);

    /**
     * @notice Every governance setting, in one call.
     * @return The settings, fixed at deployment.
     */
    function governance() external view returns (Governance memory);

    /**
     * @notice Number of organisations whose status is Active.
     * @return The count.
     */
    function activeOrgCount() external view returns (uint256);

    /**
     * @notice Status of an organisation.
     * @param orgId The organisation.
     * @return The status (None if unknown).
     */
    function orgStatus(bytes32 orgId) external view returns (OrgStatus);

    /**
     * @notice Role bitmask of an organisation (PROVIDER=1, CONSUMER=2, COMPUTE=4, REGULATOR=8).
     * @param orgId The organisation.
     * @return The roles mask (0 if unknown).
     */
    function orgRoles(bytes32 orgId) external view returns (uint8);

    /**
     * @notice Governance key of an organisation.
     * @param orgId The organisation.
     * @return The admin account (zero if unknown).
     */
    function orgAdmin(bytes32 orgId) external view returns (address);

    /**
     * @notice Display name of an organisation.
     * @param orgId The organisation.
     * @return The name (empty if unknown).
     */
    function orgName(bytes32 orgId) external view returns (string memory);

    /**
     * @notice Whether an organisation is Active.
     * @param orgId The organisation.
     * @return True if its status is Active.
     */
    function isActiveOrg(bytes32 orgId) external view returns (bool);

    /**
     * @notice Whether an organisation holds every bit of `role`, whatever its status.
     * @param orgId The organisation.
     * @param role A non-zero role mask.
     * @return True if `role` is non-zero and all its bits are among the organisation's roles.
     */
    function hasRole(bytes32 orgId, uint8 role) external view returns (bool);

    /**
     * @notice Organisation an account is bound to, as admin or as node, whatever their status.
     * @param account The account.
     * @return The organisation id, zero if the account is unbound.
     */
    function orgOfAccount(address account) external view returns (bytes32);

    /**
     * @notice Whether `node` is an Active node of an Active organisation.
     * @param node The node account.
     * @return True if both the node and its organisation are Active.
     */
    function isActiveNode(address node) external view returns (bool);

    /**
     * @notice Organisation that registered a node, whatever their status.
     * @param node The node account.
     * @return The organisation id, zero if `node` is not a registered node.
     */
    function nodeOrg(address node) external view returns (bytes32);

    /**
     * @notice Everything registered about a node.
     * @param node The node account.
     * @return orgId The owning organisation (zero if unknown).
     * @return status The node's own status (the organisation's status is separate).
     * @return endpoint The node's gRPC endpoint.
     * @return tlsCertSha256 SHA-256 of the node's TLS certificate.
     * @return teeMeasurement The node's enclave measurement, zero if none.
     */
    function nodeInfo(address node)
        external
        view
        returns (
            bytes32 orgId,
            NodeStatus status,
            string memory endpoint,
            bytes32 tlsCertSha256,
            bytes32 teeMeasurement
        );

    /**
     * @notice Whether the consortium trusts an enclave measurement right now (trusted by
     * vote and not revoked since).
     * @param measurement The enclave measurement.
     * @return True if trusted.
     */
    function isMeasurementTrusted(bytes32 measurement) external view returns (bool);

    /**
     * @notice Organisation on whose behalf `account` may act right now.
     * @dev Reverts with {NotActiveMember} unless `account` is the admin of an Active
     * organisation or an Active node of an Active organisation.
     * @param account The account to check (usually `msg.sender` of the calling contract).
     * @return orgId The account's organisation.
     */
    function activeMemberOrg(address account) external view returns (bytes32 orgId);

    /**
     * @notice Organisation whose governance key `account` is, if that organisation is Active.
     * @dev Never reverts, so that callers can raise their own error.
     * @param account The account to check.
     * @return orgId The organisation, or zero if `account` is not the admin of an Active organisation.
     */
    function activeAdminOrg(address account) external view returns (bytes32 orgId);

    /**
     * @notice Organisation of `node` if it is an Active node of an Active organisation.
     * @dev Never reverts, so that callers can raise their own error.
     * @param node The node account.
     * @return orgId The organisation, or zero if `node` is not an active node of an active organisation.
     */
    function activeNodeOrg(address node) external view returns (bytes32 orgId);
}
