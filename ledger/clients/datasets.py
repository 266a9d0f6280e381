"""Typed client for `DatasetRegistry`: append-only dataset versions and their commitments."""

from __future__ import annotations

from dataclasses import dataclass

from web3.types import TxReceipt

from ledger.clients.base import ContractClient
from ledger.ids import InvalidInput, as_bytes32, dataset_id_for


@dataclass(frozen=True)
class DatasetVersion:
    merkle_root: bytes
    row_count: int
    schema_digest: bytes
    classification: int


@dataclass(frozen=True)
class VersionCommitment:
    owner_org: bytes
    merkle_root: bytes
    retired: bool


def _classification(level: int) -> int:
    if not 1 <= level <= 4:
        raise InvalidInput("classification", f"must be 1..4, got {level}")
    return level


class DatasetRegistryClient(ContractClient):
    contract_name = "DatasetRegistry"

    @staticmethod
    def dataset_id_for(owner_org: bytes, name: bytes) -> bytes:
        """The id `registerDataset(name, ...)` gives a dataset of `owner_org` (computed locally)."""
        return dataset_id_for(owner_org, name)

    def dataset_id_on_chain(self, owner_org: bytes, name: bytes) -> bytes:
        """The contract's own `datasetIdFor`, to check the local derivation against."""
        return bytes(
            self._call("datasetIdFor", as_bytes32(owner_org, "owner_org"), as_bytes32(name, "name"))
        )

    def register(
        self,
        name: bytes,
        version: DatasetVersion,
        metadata_uri: str = "",
    ) -> TxReceipt:
        """Registers the dataset `dataset_id_for(<caller's org>, name)` with its version 1."""
        return self._transact(
            "registerDataset",
            as_bytes32(name, "name"),
            as_bytes32(version.merkle_root, "merkle_root"),
            version.row_count,
            as_bytes32(version.schema_digest, "schema_digest"),
            _classification(version.classification),
            metadata_uri,
        )

    def add_version(
        self, dataset_id: bytes, version: DatasetVersion, metadata_uri: str = ""
    ) -> int:
        receipt = self._transact(
            "addVersion",
            as_bytes32(dataset_id, "dataset_id"),
            as_bytes32(version.merkle_root, "merkle_root"),
            version.row_count,
            as_bytes32(version.schema_digest, "schema_digest"),
            _classification(version.classification),
            metadata_uri,
        )
        return int(self.events_in(receipt, "DatasetVersionAdded")[0]["version"])

    def retire(self, dataset_id: bytes) -> TxReceipt:
        return self._transact("retireDataset", as_bytes32(dataset_id, "dataset_id"))

    def owner(self, dataset_id: bytes) -> bytes:
        return bytes(self._call("datasetOwner", as_bytes32(dataset_id, "dataset_id")))

    def latest_version(self, dataset_id: bytes) -> int:
        return int(self._call("latestVersion", as_bytes32(dataset_id, "dataset_id")))

    def version_info(self, dataset_id: bytes, version: int) -> DatasetVersion:
        root, rows, schema, level = self._call(
            "versionInfo", as_bytes32(dataset_id, "dataset_id"), version
        )
        return DatasetVersion(bytes(root), int(rows), bytes(schema), int(level))

    def is_retired(self, dataset_id: bytes) -> bool:
        return bool(self._call("isRetired", as_bytes32(dataset_id, "dataset_id")))

    def version_commitment(self, dataset_id: bytes, version: int) -> VersionCommitment:
        owner, root, retired = self._call(
            "versionCommitment", as_bytes32(dataset_id, "dataset_id"), version
        )
        return VersionCommitment(bytes(owner), bytes(root), bool(retired))
