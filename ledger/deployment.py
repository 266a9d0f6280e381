"""The deployment manifest: which contracts, where, on which chain, from which build.

Every other component (nodes, auditor, CLI) loads this file instead of being told
addresses one by one, so a node can refuse to start against a chain or a build that is
not the one it was configured for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.artifacts import CONTRACT_NAMES, artifact_digest
from ledger.ids import InvalidInput, as_address
from ledger.jsonfile import read_json, write_json_atomic

MANIFEST_VERSION = 1


class ManifestError(InvalidInput):
    """A manifest that cannot be trusted or parsed; names the offending field."""


@dataclass(frozen=True)
class DeployedContract:
    address: str
    block: int
    artifact_digest: bytes
    transaction: str


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    deployer: str
    contracts: dict[str, DeployedContract]

    def address(self, name: str) -> str:
        return self.contracts[name].address

    @property
    def first_block(self) -> int:
        return min(c.block for c in self.contracts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "chainId": self.chain_id,
            "deployer": self.deployer,
            "contracts": {
                name: {
                    "address": c.address,
                    "block": c.block,
                    "artifactDigest": "0x" + c.artifact_digest.hex(),
                    "transaction": c.transaction,
                }
                for name, c in self.contracts.items()
            },
        }

    def save(self, path: Path) -> None:
        """Atomic write: a crash never leaves a half-written manifest behind."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Deployment:
        return cls.from_json(read_json(path, "manifest", ManifestError))

    @classmethod
    def from_json(cls, raw: object) -> Deployment:
        if not isinstance(raw, dict):
            raise ManifestError("manifest", "expected a JSON object")
        if raw.get("version") != MANIFEST_VERSION:
            raise ManifestError(
                "version", f"expected {MANIFEST_VERSION}, got {raw.get('version')!r}"
            )
        chain_id = raw.get("chainId")
        if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
            raise ManifestError("chainId", f"expected a positive integer, got {chain_id!r}")
        deployer = _address(raw.get("deployer"), "deployer")
        entries = raw.get("contracts")
        if not isinstance(entries, dict):
            raise ManifestError("contracts", "expected an object keyed by contract name")
        contracts: dict[str, DeployedContract] = {}
        for name in CONTRACT_NAMES:
            contracts[name] = _contract(entries.get(name), f"contracts.{name}")
        unknown = sorted(set(entries) - set(CONTRACT_NAMES))
        if unknown:
            raise ManifestError(f"contracts.{unknown[0]}", "unknown contract")
        return cls(chain_id=chain_id, deployer=deployer, contracts=contracts)

    def check_artifacts(self) -> None:
        """Refuse a manifest made from a different build than the one installed here.

        This checks only what the manifest claims; `ledger.deployment_binding` checks
        the chain itself (the code at these addresses, its origin and its wiring).
        """
        for name, contract in self.contracts.items():
            if contract.artifact_digest != artifact_digest(name):
                raise ManifestError(
                    f"contracts.{name}.artifactDigest",
                    "deployed from a different build than contracts/build/ here",
                )


def _address(value: object, field: str) -> str:
    try:
        return str(as_address(value, field))
    except InvalidInput as exc:
        raise ManifestError(exc.field, exc.problem) from None


def _contract(entry: object, field: str) -> DeployedContract:
    if not isinstance(entry, dict):
        raise ManifestError(field, "missing or not an object")
    block = entry.get("block")
    if not isinstance(block, int) or isinstance(block, bool) or block < 0:
        raise ManifestError(f"{field}.block", f"expected a block number, got {block!r}")
    digest_text = entry.get("artifactDigest")
    if (
        not isinstance(digest_text, str)
        or len(digest_text) != 66
        or not digest_text.startswith("0x")
    ):
        raise ManifestError(
            f"{field}.artifactDigest", f"expected 0x + 64 hex digits, got {digest_text!r}"
        )
    try:
        digest = bytes.fromhex(digest_text[2:])
    except ValueError:
        raise ManifestError(f"{field}.artifactDigest", "not hexadecimal") from None
    tx = entry.get("transaction")
    if not isinstance(tx, str) or len(tx) != 66:
        raise ManifestError(f"{field}.transaction", f"expected a transaction hash, got {tx!r}")
    return DeployedContract(
        address=_address(entry.get("address"), f"{field}.address"),
        block=block,
        artifact_digest=digest,
        transaction=tx,
    )
