"""Gather a task's history from the chain for the verifier.

The auditor reads every event of the deployment (it needs membership, algorithm,
dataset and grant history, not just the task's own events) and the timestamps of the
blocks the task touched, behind the configured confirmation depth.
"""

from __future__ import annotations

from auditor.verifier import Check, TaskHistory
from auditor.verifier import deployment_checks as as_checks
from ledger.artifacts import CONTRACT_NAMES, abi
from ledger.chain import Chain
from ledger.deployment import Deployment
from ledger.deployment_binding import verify_deployment
from ledger.events import EventReader, Source


def reader_for(chain: Chain, deployment: Deployment, confirmations: int = 0) -> EventReader:
    sources = [Source(n, deployment.address(n), abi(n)) for n in CONTRACT_NAMES]
    return EventReader(chain, sources, confirmations=confirmations)


def task_history(
    chain: Chain, deployment: Deployment, task_id: bytes, confirmations: int = 0
) -> TaskHistory:
    events = reader_for(chain, deployment, confirmations).read(deployment.first_block)
    blocks = {
        e.block_number
        for e in events
        if e.contract == "TaskRegistry" and bytes(e.args.get("taskId", b"")) == task_id
    }
    timestamps = {b: int(chain.w3.eth.get_block(b)["timestamp"]) for b in blocks}
    return TaskHistory(task_id, events, timestamps)


def deployment_checks(chain: Chain, deployment: Deployment, confirmations: int = 0) -> list[Check]:
    """`deployment_bytecode`, `deployment_origin` and `deployment_links`: the code, creation
    and wiring at the manifest's addresses, read at the confirmed head the events are
    read up to."""
    head = max(reader_for(chain, deployment, confirmations).safe_head(), 0)
    return as_checks(verify_deployment(chain, deployment, head))
