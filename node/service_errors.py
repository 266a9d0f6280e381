"""The typed errors of `node.service.NodeService`, for the REST API and the CLI to map.

`InvalidInput` (ledger.ids) means the request itself is malformed or cannot match what it
refers to (HTTP 422); `Conflict` means the request is well formed but the chain's current
state, or an earlier request with the same request id, rules it out (HTTP 409);
`UnknownTask` and `UnknownDataset` mean no such task or dataset exists (HTTP 404). Each
carries the offending field so an answer can name it, and all derive from `InvalidInput`
so older callers that catch only that still report them cleanly.
"""

from __future__ import annotations

from ledger.ids import InvalidInput

__all__ = ["Conflict", "InvalidInput", "UnknownDataset", "UnknownTask"]


class Conflict(InvalidInput):
    """Well-formed, but refused by the chain's state or an earlier request: retrying the
    same request unchanged will not help until that state changes (HTTP 409)."""


class UnknownTask(InvalidInput):
    """No task with that id (or request id) exists on chain or on this node (HTTP 404)."""

    def __init__(self, task_id: bytes | str, problem: str = "no such task on chain") -> None:
        ref = "0x" + task_id.hex() if isinstance(task_id, bytes) else task_id
        super().__init__("taskId", f"{ref}: {problem}")


class UnknownDataset(InvalidInput):
    """No dataset with that id (or this organisation's name) is registered (HTTP 404)."""
