"""`algorithm_approved_at_start`: the task's algorithm digest was approved (and not
deprecated since) when the task started."""

from __future__ import annotations

from auditor.verify.check import Check, digest32, guarded, maybe_bytes
from auditor.verify.history import TaskHistory, hex_


@guarded("algorithm_approved_at_start")
def check_algorithm_approved(h: TaskHistory) -> Check:
    created = h.created()
    if created is None:
        return Check("algorithm_approved_at_start", False, "task was never created")
    algorithm = digest32(created.args["algorithmDigest"], "TaskCreated.algorithmDigest")
    started = next((e for e in h.task_events if e.name == "TaskStarted"), None)
    until = started.position if started else created.position
    approved_at = None
    for e in h.before(until):
        if e.contract == "AlgorithmRegistry" and maybe_bytes(e.args.get("digest")) == algorithm:
            if e.name == "AlgorithmApproved":
                approved_at = e.block_number
            elif e.name == "AlgorithmDeprecated":
                approved_at = None
    ok = approved_at is not None
    return Check(
        "algorithm_approved_at_start",
        ok,
        f"approved at block {approved_at}" if ok else "not approved when the task started",
        {"algorithmDigest": hex_(algorithm), "approvedAt": approved_at},
    )
