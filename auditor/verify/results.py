"""`result_digests_agree`: the trail accounts for the task's outcome."""

from __future__ import annotations

from typing import Any

from auditor.verify.check import Check, digest32, guarded
from auditor.verify.history import TaskHistory, hex_
from ledger.clients.tasks import Reason

NAME = "result_digests_agree"


@guarded(NAME)
def check_results(h: TaskHistory) -> Check:
    """A completed task: every participant submitted the same digest and the task
    completed with it. A task that ended otherwise: the end is on chain with its cause,
    and whatever results were submitted before it agree."""
    digests = {
        str(e.args["node"]): digest32(e.args["resultDigest"], "ResultSubmitted.resultDigest")
        for e in h.task_events
        if e.name == "ResultSubmitted"
    }
    evidence: dict[str, Any] = {"results": {n: hex_(d) for n, d in digests.items()}}
    completed = next((e for e in h.task_events if e.name == "TaskCompleted"), None)
    nodes = {p[0] for p in h.participants()}
    if completed is not None:
        final = digest32(completed.args["resultDigest"], "TaskCompleted.resultDigest")
        evidence["completedWith"] = hex_(final)
        ok = (
            bool(digests)
            and set(digests) == nodes
            and len(set(digests.values())) == 1
            and final in digests.values()
        )
        detail = (
            "every participant submitted the same result digest and the task completed"
            if ok
            else "results missing or disagreeing in a completed task"
        )
        return Check(NAME, ok, detail, evidence)
    failed = next((e for e in h.task_events if e.name == "TaskFailed"), None)
    if failed is not None:
        code = int(failed.args["reasonCode"])
        reason = Reason(code).name if code in Reason._value2member_map_ else f"code {code}"
        reporter = str(failed.args["reporter"])
        evidence["outcome"] = {"state": "FAILED", "reason": reason, "reporter": reporter}
        ok = len(set(digests.values())) <= 1
        detail = f"task failed: {reason}, reported by {reporter}" + (
            "" if ok else "; the results submitted before it disagree"
        )
        return Check(NAME, ok, detail, evidence)
    if any(e.name == "TaskExpired" for e in h.task_events):
        evidence["outcome"] = {"state": "EXPIRED"}
        ok = len(set(digests.values())) <= 1
        return Check(NAME, ok, "task expired before every result", evidence)
    if any(e.name == "TaskDisputed" for e in h.task_events):
        return Check(NAME, False, "result digests disagree (disputed)", evidence)
    return Check(NAME, False, "task has not finished", evidence)
