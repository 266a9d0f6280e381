"""What a node knows of an earlier task, for an algorithm that builds on one (batch
scoring with a model a training task anchored, ``node/algorithms/fl_score.py``).

Gathered from the chain (algorithm, state, participants, this node's checkpoints) and
from the node's own task record (its result, or the share it kept), never from a peer:
each party checks its own model against its own anchors before it uses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ledger.clients.tasks import TaskRegistryClient
from ledger.errors import ContractRevert
from node.state import TaskStateStore


@dataclass(frozen=True)
class PriorTask:
    """One earlier task, as this node sees it."""

    task_id: bytes
    algorithm: str | None  # the approved algorithm's name, if this node runs it
    state: str  # the chain's TaskState name
    participants: tuple[str, ...]  # nodes, in seat order
    record: Mapping[str, Any] | None  # this node's stored result or kept share
    anchored: tuple[tuple[int, bytes], ...]  # this node's checkpoints: (round, digest)


def gather(
    tasks: TaskRegistryClient,
    state: TaskStateStore,
    algorithms: Mapping[bytes, ModuleType],
    node: str,
    task_id: bytes,
    from_block: int = 0,
) -> PriorTask | None:
    """The task's facts for ``node``; None when the chain has no such task."""
    try:
        info = tasks.info(task_id)
        participants = tasks.participants(task_id)
    except ContractRevert:
        return None
    if not participants:
        return None
    module = algorithms.get(info.algorithm_digest)
    held = state.get(task_id)
    record = None if held is None or held.result_json is None else json.loads(held.result_json)
    return PriorTask(
        task_id=task_id,
        algorithm=None if module is None else str(module.NAME),
        state=info.state.name,
        participants=tuple(p.node for p in participants),
        record=record,
        anchored=tuple(tasks.checkpoints(task_id, node, from_block)),
    )
