"""``Checkpointer``: anchors the query log's Merkle root in ``AnchorLog``.

The auditor's key (an admin or active node of the regulator's organisation: AnchorLog
accepts only active members) owns one AnchorLog log, ``logIdFor(key, name)``. The first
checkpoint creates it (``createLog``, as a node does for its evidence logs), later ones
append when the query log has grown. Before anchoring, the anchored checkpoint on chain
is compared with the local log's root at that size: if they differ, the local log was
altered (or is another log) and nothing more is anchored until a person looks.

Each checkpoint is recorded with its transaction hash in ``query_log_checkpoints``.
The service calls ``checkpoint_once`` every N seconds.
"""

from __future__ import annotations

from typing import Any

from auditor.querylog.log import QueryLog
from ledger.clients.anchor_log import AnchorLogClient
from ledger.ids import name_id

DEFAULT_NAME = "auditor-query-log"


class LogDiverged(RuntimeError):
    """The root anchored on chain is not the local log's root at that size."""


def query_log_name(name: str) -> bytes:
    """The bytes32 AnchorLog name of a query log called ``name``."""
    return name_id("query-log", name)


class Checkpointer:
    """Anchors one QueryLog's growth through an AnchorLog client that has a sender."""

    def __init__(
        self, query_log: QueryLog, anchors: AnchorLogClient, name: str = DEFAULT_NAME
    ) -> None:
        if anchors.sender is None:
            raise ValueError("the AnchorLog client needs a sender account (the auditor's key)")
        self.query_log = query_log
        self.anchors = anchors
        self.name = query_log_name(name)
        self.log_id = anchors.own_log_id(self.name)

    def checkpoint_once(self) -> dict[str, Any] | None:
        """Anchor the current root if the log grew since the last checkpoint on chain;
        the recorded checkpoint, or None when there was nothing new."""
        size = self.query_log.size()
        anchored_size, anchored_root = self.anchors.latest(self.log_id)
        if anchored_size > 0:
            if anchored_size > size:
                raise LogDiverged(
                    f"AnchorLog log 0x{self.log_id.hex()} holds {anchored_size} entries, the "
                    f"local query log {size}: the database was replaced or truncated, or "
                    "another database uses this key and log name (give each its own name)"
                )
            if self.query_log.root(anchored_size) != anchored_root:
                raise LogDiverged(
                    f"the local query log's root at {anchored_size} entries differs from the "
                    "one anchored on chain: entries were altered"
                )
        if size == 0 or size <= anchored_size:
            return None
        root = self.query_log.root(size)
        if anchored_size == 0:
            receipt = self.anchors.create_log(self.name, size, root)
        else:
            receipt = self.anchors.checkpoint(self.log_id, size, root)
        return self.query_log.record_checkpoint(
            size,
            root,
            self.log_id,
            bytes(receipt["transactionHash"]),
            int(receipt["blockNumber"]),
        )
