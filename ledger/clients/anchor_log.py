"""Typed client for `AnchorLog`: transparency-log style checkpoints of off-chain logs."""

from __future__ import annotations

from web3.types import TxReceipt

from ledger.clients.base import ContractClient
from ledger.ids import InvalidInput, as_bytes32


class AnchorLogClient(ContractClient):
    contract_name = "AnchorLog"

    def checkpoint(self, log_id: bytes, tree_size: int, root_hash: bytes) -> TxReceipt:
        if not 0 < tree_size < 2**64:
            raise InvalidInput("tree_size", f"must be 1..2^64-1, got {tree_size}")
        return self._transact(
            "checkpoint",
            as_bytes32(log_id, "log_id"),
            tree_size,
            as_bytes32(root_hash, "root_hash"),
        )

    def latest(self, log_id: bytes) -> tuple[int, bytes]:
        size, root = self._call("latest", as_bytes32(log_id, "log_id"))
        return int(size), bytes(root)

    def owner(self, log_id: bytes) -> str:
        return str(self._call("logOwner", as_bytes32(log_id, "log_id")))
