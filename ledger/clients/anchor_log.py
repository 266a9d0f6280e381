"""Typed client for `AnchorLog`: transparency-log style checkpoints of off-chain logs."""

from __future__ import annotations

from web3.types import TxReceipt

from ledger.clients.base import ContractClient
from ledger.ids import InvalidInput, as_address, as_bytes32, log_id_for


def _tree_size(tree_size: int) -> int:
    if not 0 < tree_size < 2**64:
        raise InvalidInput("tree_size", f"must be 1..2^64-1, got {tree_size}")
    return tree_size


class AnchorLogClient(ContractClient):
    contract_name = "AnchorLog"

    @staticmethod
    def log_id_for(owner: str, name: bytes) -> bytes:
        """The id `createLog(name, ...)` gives a log created by `owner` (computed locally)."""
        return log_id_for(owner, name)

    def log_id_on_chain(self, owner: str, name: bytes) -> bytes:
        """The contract's own `logIdFor`, to check the local derivation against."""
        return bytes(self._call("logIdFor", as_address(owner, "owner"), as_bytes32(name, "name")))

    def own_log_id(self, name: bytes) -> bytes:
        """The id of this client's sender's log `name`."""
        if self.sender is None:
            raise RuntimeError("AnchorLog: client has no sender account")
        return log_id_for(self.sender.address, name)

    def create_log(self, name: bytes, tree_size: int, root_hash: bytes) -> TxReceipt:
        """Creates the sender's log `log_id_for(sender, name)` with its first checkpoint."""
        return self._transact(
            "createLog",
            as_bytes32(name, "name"),
            _tree_size(tree_size),
            as_bytes32(root_hash, "root_hash"),
        )

    def checkpoint(self, log_id: bytes, tree_size: int, root_hash: bytes) -> TxReceipt:
        """Appends a checkpoint to an existing log of the sender's."""
        return self._transact(
            "checkpoint",
            as_bytes32(log_id, "log_id"),
            _tree_size(tree_size),
            as_bytes32(root_hash, "root_hash"),
        )

    def append(self, name: bytes, tree_size: int, root_hash: bytes) -> TxReceipt:
        """Checkpoints the sender's log `name`, creating it on the first call."""
        log_id = self.own_log_id(name)
        if self.owner(log_id) == "0x" + "00" * 20:
            return self.create_log(name, tree_size, root_hash)
        return self.checkpoint(log_id, tree_size, root_hash)

    def latest(self, log_id: bytes) -> tuple[int, bytes]:
        size, root = self._call("latest", as_bytes32(log_id, "log_id"))
        return int(size), bytes(root)

    def owner(self, log_id: bytes) -> str:
        return str(self._call("logOwner", as_bytes32(log_id, "log_id")))
