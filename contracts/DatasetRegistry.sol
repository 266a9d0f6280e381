// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./IConsortium.sol";
import {IDatasetRegistry} from "./IDatasetRegistry.sol";
import {ROLE_PROVIDER} from "./Roles.sol";

/**
 * @title DatasetRegistry
 * @notice Datasets offered by PROVIDER organisations: owner, append-only versions
 * (row-Merkle root, row count, schema digest, classification 1..4, metadata URI) and
 * retirement. Rows never come on chain, only their Merkle root.
 * @dev Per version, storage keeps the Merkle root, the schema digest (nodes check their
 * own copy against both) and the packed row count and classification; the metadata URI
 * is in the {DatasetVersionAdded} event only. Dataset ids are derived on chain from the
 * owning organisation and its name for the dataset ({datasetIdFor}), so no member can
 * occupy another member's dataset id.
 */
contract DatasetRegistry is IDatasetRegistry {
    struct Dataset {
        bytes32 ownerOrg;
        uint32 latestVersion;
        bool retired;
    }

    struct Version {
        bytes32 merkleRoot;
        bytes32 schemaDigest;
        uint64 rowCount;
        uint8 classification;
    }

    /// @notice Highest classification level.
    uint8 public constant MAX_CLASSIFICATION = 4;

    /// @notice Domain separator of dataset ids, see {datasetIdFor}.
    string public constant DATASET_ID_DOMAIN = "provnet:dataset:v1";

    /// @notice The consortium whose members register datasets.
    IConsortium public immutable consortium;

    mapping(bytes32 datasetId => Dataset) private _datasets;
    mapping(bytes32 datasetId => mapping(uint32 version => Version)) private _versions;

    /**
     * @notice A dataset was registered; its version 1 follows as {DatasetVersionAdded}.
     * @param datasetId The dataset, `datasetIdFor(ownerOrg, name)`.
     * @param ownerOrg The owning organisation.
     * @param name The owner's name (or request id) for the dataset.
     */
    event DatasetRegistered(bytes32 indexed datasetId, bytes32 indexed ownerOrg, bytes32 name);

    /**
     * @notice A dataset version was added.
     * @param datasetId The dataset.
     * @param version The new version number (1 for a new dataset, then +1 each time).
     * @param merkleRoot RFC 9162 Merkle root over the version's salted, canonically encoded rows.
     * @param rowCount Number of rows.
     * @param schemaDigest Digest of the version's schema.
     * @param classification Sensitivity level, 1..4.
     * @param metadataURI Where the version's public metadata can be fetched.
     */
    event DatasetVersionAdded(
        bytes32 indexed datasetId,
        uint32 indexed version,
        bytes32 merkleRoot,
        uint64 rowCount,
        bytes32 schemaDigest,
        uint8 classification,
        string metadataURI
    );

    /**
     * @notice A dataset was retired, for good.
     * @param datasetId The dataset.
     */
    event DatasetRetired(bytes32 indexed datasetId);

    /// @notice The caller's organisation lacks a role.
    /// @param orgId The caller's organisation.
    /// @param role The missing role.
    error MissingRole(bytes32 orgId, uint8 role);

    /// @notice The dataset name is zero.
    error InvalidDatasetName();

    /// @notice The caller's organisation already registered a dataset under this name.
    /// @param datasetId The existing dataset.
    error DatasetAlreadyExists(bytes32 datasetId);

    /// @notice The Merkle root or the schema digest is zero.
    error InvalidCommitment();

    /// @notice The classification is not within 1..4.
    /// @param classification The rejected level.
    error InvalidClassification(uint8 classification);

    /// @notice No such dataset.
    /// @param datasetId The dataset.
    error UnknownDataset(bytes32 datasetId);

    /// @notice No such dataset version.
    /// @param datasetId The dataset.
    /// @param version The version.
    error UnknownDatasetVersion(bytes32 datasetId, uint32 version);

    /// @notice The caller's organisation does not own the dataset.
    /// @param datasetId The dataset.
    /// @param orgId The caller's organisation.
    error NotDatasetOwner(bytes32 datasetId, bytes32 orgId);

    /// @notice The dataset is retired.
    /// @param datasetId The dataset.
    error DatasetIsRetired(bytes32 datasetId);

    /**
     * @notice Deploys the registry for a consortium.
     * @param consortium_ The consortium whose members register datasets.
     */
    constructor(IConsortium consortium_) {
        consortium = consortium_;
    }

    /**
     * @notice Registers a new dataset with its version 1.
     * @dev Caller: admin or active node of an Active organisation with the PROVIDER role;
     * that organisation becomes the owner. The dataset id is `datasetIdFor(ownerOrg, name)`:
     * another organisation using the same name gets another dataset id.
     * @param name Non-zero name (or request id) of the dataset, unique per owner organisation.
     * @param merkleRoot Non-zero Merkle root over the rows.
     * @param rowCount Number of rows.
     * @param schemaDigest Non-zero schema digest.
     * @param classification Sensitivity level, 1..4.
     * @param metadataURI Where public metadata can be fetched (event only).
     * @return datasetId The new dataset's id.
     */
    function registerDataset(
        bytes32 name,
        bytes32 merkleRoot,
        uint64 rowCount,
        bytes32 schemaDigest,
        uint8 classification,
        string calldata metadataURI
    ) external returns (bytes32 datasetId) {
        bytes32 orgId = consortium.activeMemberOrg(msg.sender);
        if (!consortium.hasRole(orgId, ROLE_PROVIDER)) revert MissingRole(orgId, ROLE_PROVIDER);
        if (name == bytes32(0)) revert InvalidDatasetName();
        datasetId = datasetIdFor(orgId, name);
        Dataset storage d = _datasets[datasetId];
        if (d.ownerOrg != bytes32(0)) revert DatasetAlreadyExists(datasetId);
        d.ownerOrg = orgId;
        emit DatasetRegistered(datasetId, orgId, name);
        _addVersion(datasetId, d, merkleRoot, rowCount, schemaDigest, classification, metadataURI);
    }

    /**
     * @notice Appends a version to a dataset.
     * @dev Caller: admin or active node of the owning organisation (which must be Active).
     * @param datasetId The dataset; must exist and not be retired.
     * @param merkleRoot Non-zero Merkle root over the rows.
     * @param rowCount Number of rows.
     * @param schemaDigest Non-zero schema digest.
     * @param classification Sensitivity level, 1..4.
     * @param metadataURI Where public metadata can be fetched (event only).
     * @return version The new version number.
     */
    function addVersion(
        bytes32 datasetId,
        bytes32 merkleRoot,
        uint64 rowCount,
        bytes32 schemaDigest,
        uint8 classification,
        string calldata metadataURI
    ) external returns (uint32 version) {
        Dataset storage d = _ownedLiveDataset(datasetId);
        return _addVersion(datasetId, d, merkleRoot, rowCount, schemaDigest, classification, metadataURI);
    }

    /**
     * @notice Retires a dataset, for good: no new versions, grants or tasks may name it.
     * @dev Caller: admin or active node of the owning organisation (which must be Active).
     * Tasks already running on it are not stopped.
     * @param datasetId The dataset; must exist and not be retired.
     */
    function retireDataset(bytes32 datasetId) external {
        Dataset storage d = _ownedLiveDataset(datasetId);
        d.retired = true;
        emit DatasetRetired(datasetId);
    }

    /// @inheritdoc IDatasetRegistry
    function datasetIdFor(bytes32 ownerOrg, bytes32 name) public pure returns (bytes32) {
        return keccak256(abi.encode(DATASET_ID_DOMAIN, ownerOrg, name));
    }

    /// @inheritdoc IDatasetRegistry
    function datasetOwner(bytes32 datasetId) external view returns (bytes32 orgId) {
        orgId = _datasets[datasetId].ownerOrg;
        if (orgId == bytes32(0)) revert UnknownDataset(datasetId);
    }

    /// @inheritdoc IDatasetRegistry
    function latestVersion(bytes32 datasetId) external view returns (uint32) {
        return _datasets[datasetId].latestVersion;
    }

    /// @inheritdoc IDatasetRegistry
    function isRetired(bytes32 datasetId) external view returns (bool) {
        return _datasets[datasetId].retired;
    }

    /// @inheritdoc IDatasetRegistry
    function versionInfo(bytes32 datasetId, uint32 version)
        external
        view
        returns (bytes32 merkleRoot, uint64 rowCount, bytes32 schemaDigest, uint8 classification)
    {
        _checkVersion(datasetId, version);
        Version storage v = _versions[datasetId][version];
        return (v.merkleRoot, v.rowCount, v.schemaDigest, v.classification);
    }

    /// @inheritdoc IDatasetRegistry
    function versionCommitment(bytes32 datasetId, uint32 version)
        external
        view
        returns (bytes32 ownerOrg, bytes32 merkleRoot, bool retired)
    {
        Dataset storage d = _checkVersion(datasetId, version);
        return (d.ownerOrg, _versions[datasetId][version].merkleRoot, d.retired);
    }

    function _checkVersion(bytes32 datasetId, uint32 version) private view returns (Dataset storage d) {
        d = _datasets[datasetId];
        if (version == 0 || version > d.latestVersion) revert UnknownDatasetVersion(datasetId, version);
    }

    function _ownedLiveDataset(bytes32 datasetId) private view returns (Dataset storage d) {
        bytes32 orgId = consortium.activeMemberOrg(msg.sender);
        d = _datasets[datasetId];
        if (d.ownerOrg == bytes32(0)) revert UnknownDataset(datasetId);
        if (d.ownerOrg != orgId) revert NotDatasetOwner(datasetId, orgId);
        if (d.retired) revert DatasetIsRetired(datasetId);
    }

    function _addVersion(
        bytes32 datasetId,
        Dataset storage d,
        bytes32 merkleRoot,
        uint64 rowCount,
        bytes32 schemaDigest,
        uint8 classification,
        string calldata metadataURI
    ) private returns (uint32 version) {
        if (merkleRoot == bytes32(0) || schemaDigest == bytes32(0)) revert InvalidCommitment();
        if (classification == 0 || classification > MAX_CLASSIFICATION) revert InvalidClassification(classification);
        version = d.latestVersion + 1;
        d.latestVersion = version;
        _versions[datasetId][version] =
            Version({merkleRoot: merkleRoot, schemaDigest: schemaDigest, rowCount: rowCount, classification: classification});
        emit DatasetVersionAdded(datasetId, version, merkleRoot, rowCount, schemaDigest, classification, metadataURI);
    }
}
