"""What a node knows of an earlier task, for an algorithm that builds on one (batch
scoring with a model a training task anchored, ``node/algorithms/fl_score.py``).

Gathered from the chain (algorithm, state, parameters digest, seats, every
participant's checkpoints) and from the node's own task record (its result or the share
it kept, its parameters), never from a peer: each party checks the model it is to use
against the chain before anything leaves it.
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
    params_digest: bytes  # what the on-chain paramsDigest commits to
    participants: tuple[str, ...]  # nodes, in seat order
    with_data: tuple[bool, ...]  # per seat: brings a dataset (False: a data-less aggregator)
    record: Mapping[str, Any] | None  # this node's stored result or kept share
    params: Mapping[str, Any] | None  # this node's stored parameters envelope, if it has one
    # Every participant's checkpoints, by lower-case address: (round, digest) in order.
    anchored: Mapping[str, tuple[tuple[int, bytes], ...]]

    def anchors_of(self, node: str) -> tuple[tuple[int, bytes], ...]:
        return self.anchored.get(node.lower(), ())

    def seats(self, with_data: bool) -> list[str]:
        """The participants that bring a dataset (True) or none (False), in seat order."""
        return [
            p
            for p, data in zip(self.participants, self.with_data, strict=True)
            if data == with_data
        ]


def gather(
    tasks: TaskRegistryClient,
    state: TaskStateStore,
    algorithms: Mapping[bytes, ModuleType],
    task_id: bytes,
    from_block: int = 0,
) -> PriorTask | None:
    """The task's facts; None when the chain has no such task."""
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
    params = None if held is None else held.params
    return PriorTask(
        task_id=task_id,
        algorithm=None if module is None else str(module.NAME),
        state=info.state.name,
        params_digest=info.params_digest,
        participants=tuple(p.node for p in participants),
        with_data=tuple(p.dataset_id != bytes(32) for p in participants),
        record=record,
        params=params if isinstance(params, Mapping) else None,
        anchored={
            p.node.lower(): tuple(tasks.checkpoints(task_id, p.node, from_block))
            for p in participants
        },
    )
