// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IDatasetRegistry
 * @notice Datasets and their append-only versions, as the other provnet contracts read them.
 */
interface IDatasetRegistry {
    /**
     * @notice The id of the dataset an organisation registers under a name.
     * @param ownerOrg The owning organisation.
     * @param name The organisation's name (or request id) for the dataset.
     * @return `keccak256(abi.encode("provnet:dataset:v1", ownerOrg, name))`.
     */
    function datasetIdFor(bytes32 ownerOrg, bytes32 name) external pure returns (bytes32);

    /**
     * @notice Organisation that registered (and owns) a dataset.
     * @dev Reverts with `UnknownDataset(datasetId)` if the dataset does not exist.
     * @param datasetId The dataset.
     * @return orgId The owning organisation.
     */
    function datasetOwner(bytes32 datasetId) external view returns (bytes32 orgId);

    /**
     * @notice Highest version number of a dataset.
     * @param datasetId The dataset.
     * @return The latest version, 0 if the dataset does not exist.
     */
    function latestVersion(bytes32 datasetId) external view returns (uint32);

    /**
     * @notice Whether a dataset was retired (no new versions, grants or tasks).
     * @param datasetId The dataset.
     * @return True if retired (false if unknown).
     */
    function isRetired(bytes32 datasetId) external view returns (bool);

    /**
     * @notice Registered commitments of one dataset version.
     * @dev Reverts with `UnknownDatasetVersion(datasetId, version)` if it does not exist.
     * @param datasetId The dataset.
     * @param version The version, from 1.
     * @return merkleRoot RFC 9162 Merkle root over the version's salted, canonically encoded rows.
     * @return rowCount Number of rows.
     * @return schemaDigest Digest of the version's schema.
     * @return classification Sensitivity level, 1..4.
     */
    function versionInfo(bytes32 datasetId, uint32 version)
        external
        view
        returns (bytes32 merkleRoot, uint64 rowCount, bytes32 schemaDigest, uint8 classification);

    /**
     * @notice What a task needs to check about a dataset version, in one call.
     * @dev Reverts with `UnknownDatasetVersion(datasetId, version)` if it does not exist.
     * @param datasetId The dataset.
     * @param version The version, from 1.
     * @return ownerOrg The owning organisation.
     * @return merkleRoot The version's registered Merkle root.
     * @return retired Whether the dataset is retired.
     */
    function versionCommitment(bytes32 datasetId, uint32 version)
        external
        view
        returns (bytes32 ownerOrg, bytes32 merkleRoot, bool retired);
}
