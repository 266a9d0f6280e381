"""`membership_active`: the creator organisation and every node acting for the task were
active members at each step, as replayed from Consortium events up to that step."""

from __future__ import annotations

from auditor.verify.check import Check, digest32, guarded
from auditor.verify.history import NODE_STEPS, TaskHistory, hex_, node_active, org_active


@guarded("membership_active")
def check_membership(h: TaskHistory) -> Check:
    created = h.created()
    if created is None:
        return Check("membership_active", False, "task was never created")
    creator = digest32(created.args["creatorOrg"], "TaskCreated.creatorOrg")
    if not org_active(h.before(created.position), creator):
        return Check("membership_active", False, f"creator org {hex_(creator)} not active")
    steps = 0
    for e in h.task_events:
        if e.name in NODE_STEPS:
            node = str(e.args["node"])
            steps += 1
            if not node_active(h.before(e.position), node):
                return Check(
                    "membership_active",
                    False,
                    f"{node} not an active node of an active org at block {e.block_number}",
                    {"node": node, "block": e.block_number, "event": e.name},
                )
    return Check(
        "membership_active",
        True,
        f"creator org and every acting node were active at each of {steps} steps",
        {"creatorOrg": hex_(creator), "steps": steps},
    )
