"""`failure_reporter_authorised`: whoever recorded a TaskFailed was allowed to, and a
contract-detected lapse it names held in the replayed history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.verify.check import Check, digest32, guarded, maybe_bytes
from auditor.verify.history import (
    ZERO,
    TaskHistory,
    hex_,
    node_active,
    node_org,
    org_active,
    org_admin,
)
from ledger.clients.tasks import Reason
from ledger.events import Event

NAME = "failure_reporter_authorised"

#: Reason codes below this are detected by the contract itself (TaskRegistry's
#: MIN_REPORTED_REASON); from it on, a caller reports them.
MIN_REPORTED_REASON = 100


def _lapse_holds(h: TaskHistory, prior: Sequence[Event], code: int) -> tuple[bool, str]:
    """Did the lapse a contract-detected code names hold just before the failure?"""
    created = h.created()
    assert created is not None
    if code == Reason.GRANT_REVOKED:
        grants = {p[3] for p in h.participants() if p[3] != ZERO}
        revoked = [
            g
            for g in grants
            if any(
                e.contract == "AuthorizationRegistry"
                and e.name == "GrantRevoked"
                and maybe_bytes(e.args.get("grantId")) == g
                for e in prior
            )
        ]
        return bool(revoked), (
            f"grant {hex_(revoked[0])} was revoked" if revoked else "no participant grant revoked"
        )
    if code == Reason.PARTICIPANT_INACTIVE:
        creator = digest32(created.args["creatorOrg"], "TaskCreated.creatorOrg")
        if not org_active(prior, creator):
            return True, f"creator org {hex_(creator)} was not active"
        inactive = [p[0] for p in h.participants() if not node_active(prior, p[0])]
        return bool(inactive), (
            f"participant {inactive[0]} was not active" if inactive else "every member active"
        )
    if code == Reason.ALGORITHM_DEPRECATED:
        algorithm = digest32(created.args["algorithmDigest"], "TaskCreated.algorithmDigest")
        approved = False
        for e in prior:
            if e.contract == "AlgorithmRegistry" and maybe_bytes(e.args.get("digest")) == algorithm:
                if e.name == "AlgorithmApproved":
                    approved = True
                elif e.name == "AlgorithmDeprecated":
                    approved = False
        return not approved, ("algorithm no longer approved" if not approved else "still approved")
    return False, f"code {code} is no lapse the contract detects"


@guarded(NAME)
def check_failure_reporter(h: TaskHistory) -> Check:
    """Who recorded a TaskFailed was allowed to (DESIGN §7, issue 11).

    A node-reported code (>= MIN_REPORTED_REASON) must come from a participant node that
    was active (node and organisation) at that block, or from the admin or an active node
    of the creator organisation while it was active. A contract-detected code (below it)
    is recorded with the account whose step tripped the lapse as reporter: a participant
    of the task (it may be the very node that became inactive) or a caller allowed as
    above; either way the lapse the code names must hold in the replayed history.
    """
    name = "failure_reporter_authorised"
    failed = [e for e in h.task_events if e.name == "TaskFailed"]
    if not failed:
        return Check.not_applicable(name, "the task did not fail: no reporter to authorise")
    created = h.created()
    if created is None:
        return Check(name, False, "failure of a task that was never created")
    event = failed[0]
    reporter = str(event.args["reporter"])
    code = int(event.args["reasonCode"])
    prior = h.before(event.position)
    creator = digest32(created.args["creatorOrg"], "TaskCreated.creatorOrg")
    participants = {p[0].lower() for p in h.participants()}
    who = reporter.lower()
    evidence: dict[str, Any] = {
        "reporter": reporter,
        "reasonCode": code,
        "block": event.block_number,
        "creatorOrg": hex_(creator),
    }
    if who in participants and node_active(prior, reporter):
        role = "an active participant node of an active org"
    elif org_active(prior, creator) and (
        who == org_admin(prior, creator)
        or (node_org(prior, reporter) == creator and node_active(prior, reporter))
    ):
        role = "the active creator organisation's admin or active node"
    elif code < MIN_REPORTED_REASON and who in participants:
        role = "the participant whose step the contract failed"
    else:
        return Check(
            name,
            False,
            f"{reporter} reported code {code} at block {event.block_number} but was not an "
            "active participant node of an active org, nor the active creator org's "
            "admin or node",
            evidence,
        )
    evidence["role"] = role
    if code < MIN_REPORTED_REASON:
        holds, why = _lapse_holds(h, prior, code)
        evidence["lapse"] = why
        if not holds:
            return Check(
                name,
                False,
                f"contract-detected code {code} at block {event.block_number} but {why} "
                "in the replayed history",
                evidence,
            )
        return Check(
            name, True, f"contract-detected code {code} ({why}); reporter is {role}", evidence
        )
    return Check(name, True, f"node-reported code {code} by {role}", evidence)
