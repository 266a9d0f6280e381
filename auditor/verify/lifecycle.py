"""`task_created` and `lifecycle_order`: the task exists once and its events follow the
TaskRegistry state machine (accept before start, input before result, nothing after
the end)."""

from __future__ import annotations

from auditor.verify.check import Check, guarded
from auditor.verify.history import TERMINAL, TaskHistory, hex_


@guarded("task_created")
def check_task_created(h: TaskHistory) -> Check:
    n = sum(1 for e in h.task_events if e.name == "TaskCreated")
    detail = {
        0: f"no such task on chain: {hex_(h.task_id)} (no TaskCreated event)",
        1: "exactly one TaskCreated event",
    }.get(n, f"{n} TaskCreated events")
    return Check("task_created", n == 1, detail, {"taskId": hex_(h.task_id)})


@guarded("lifecycle_order")
def check_lifecycle_order(h: TaskHistory) -> Check:
    created = h.created()
    if created is None:
        return Check("lifecycle_order", False, "task was never created")
    nodes = {p[0].lower() for p in h.participants()}
    accepted: set[str] = set()
    inputs: set[str] = set()
    results: set[str] = set()
    started = terminal = False
    trail = []
    for e in h.task_events:
        who = str(e.args.get("node", "")).lower()
        trail.append(f"{e.name}@{e.block_number}")
        problem = None
        if terminal:
            problem = f"{e.name} after the task ended"
        elif e.name == "TaskCreated":
            problem = None if e is created else "second TaskCreated"
        elif e.name == "TaskAccepted":
            problem = (
                "accept after start or by non-participant" if started or who not in nodes else None
            )
            accepted.add(who)
        elif e.name == "TaskStarted":
            problem = None if accepted == nodes else "started before every participant accepted"
            started = True
        elif e.name == "InputAnchored":
            problem = None if started and who in accepted else "input anchored before start"
            inputs.add(who)
        elif e.name == "CheckpointAnchored":
            problem = None if started else "checkpoint before start"
        elif e.name == "ResultSubmitted":
            problem = None if who in inputs else "result before own input was anchored"
            results.add(who)
        elif e.name == "TaskCompleted" or e.name == "TaskDisputed":
            problem = None if results == nodes else f"{e.name} before every result"
            terminal = True
        elif e.name in TERMINAL:
            terminal = True
        if problem:
            return Check("lifecycle_order", False, problem, {"events": trail})
    return Check("lifecycle_order", True, "events follow the task state machine", {"events": trail})
