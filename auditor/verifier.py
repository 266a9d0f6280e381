"""Re-verify a task's provenance from the chain's events and the nodes' transcripts.

Each check is a pure function over the decoded event history (in chain order) and
returns a named `Check` with the evidence it used, so a regulator can see *why* a task
passed or failed and rerun any single check. No contract view is trusted: state "as of
block N" is rebuilt by replaying events up to N, which is what lets the auditor answer
"was this node active when it accepted?" long after the fact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.clients.tasks import Reason
from ledger.events import Event
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry, chain_intact, evidence_log_id, transcript_root

ZERO = bytes(32)
TERMINAL = ("TaskCompleted", "TaskDisputed", "TaskFailed", "TaskExpired")
NODE_STEPS = ("TaskAccepted", "InputAnchored", "CheckpointAnchored", "ResultSubmitted")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class TaskHistory:
    """The events relevant to one task, with the whole history for state replay."""

    task_id: bytes
    all_events: Sequence[Event]
    timestamps: Mapping[int, int]  # block number -> block timestamp

    @property
    def task_events(self) -> list[Event]:
        return [
            e
            for e in self.all_events
            if e.contract == "TaskRegistry" and bytes(e.args.get("taskId", b"")) == self.task_id
        ]

    def created(self) -> Event | None:
        found = [e for e in self.task_events if e.name == "TaskCreated"]
        return found[0] if len(found) == 1 else None

    def participants(self) -> list[tuple[str, bytes, int, bytes]]:
        created = self.created()
        if created is None:
            return []
        return [
            (str(p["node"]), bytes(p["datasetId"]), int(p["datasetVersion"]), bytes(p["grantId"]))
            for p in created.args["participants"]
        ]

    def ended_without_results(self) -> bool:
        """Failed or expired: some participants may never have anchored evidence."""
        return any(e.name in ("TaskFailed", "TaskExpired") for e in self.task_events)

    def before(self, position: tuple[int, int]) -> list[Event]:
        return [e for e in self.all_events if e.position < position]


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _node_active(history: Sequence[Event], node: str) -> bool:
    """Replay Consortium events: is `node` an active node of an active org?"""
    node_org: dict[str, bytes] = {}
    node_ok: dict[str, bool] = {}
    org_ok: dict[bytes, bool] = {}
    for e in history:
        if e.contract != "Consortium":
            continue
        if e.name == "OrgAdmitted" or e.name == "OrgReinstated":
            org_ok[bytes(e.args["orgId"])] = True
        elif e.name == "OrgSuspended":
            org_ok[bytes(e.args["orgId"])] = False
        elif e.name == "NodeRegistered":
            key = str(e.args["node"]).lower()
            node_org[key] = bytes(e.args["orgId"])
            node_ok[key] = True
        elif e.name == "NodeRevoked":
            node_ok[str(e.args["node"]).lower()] = False
    key = node.lower()
    return node_ok.get(key, False) and org_ok.get(node_org.get(key, ZERO), False)


def _org_active(history: Sequence[Event], org: bytes) -> bool:
    active = False
    for e in history:
        if e.contract == "Consortium" and bytes(e.args.get("orgId", ZERO)) == org:
            if e.name in ("OrgAdmitted", "OrgReinstated"):
                active = True
            elif e.name == "OrgSuspended":
                active = False
    return active


def check_task_created(h: TaskHistory) -> Check:
    n = sum(1 for e in h.task_events if e.name == "TaskCreated")
    detail = {
        0: f"no such task on chain: {_hex(h.task_id)} (no TaskCreated event)",
        1: "exactly one TaskCreated event",
    }.get(n, f"{n} TaskCreated events")
    return Check("task_created", n == 1, detail, {"taskId": _hex(h.task_id)})


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


def check_membership(h: TaskHistory) -> Check:
    created = h.created()
    if created is None:
        return Check("membership_active", False, "task was never created")
    creator = bytes(created.args["creatorOrg"])
    if not _org_active(h.before(created.position), creator):
        return Check("membership_active", False, f"creator org {_hex(creator)} not active")
    steps = 0
    for e in h.task_events:
        if e.name in NODE_STEPS:
            node = str(e.args["node"])
            steps += 1
            if not _node_active(h.before(e.position), node):
                return Check(
                    "membership_active",
                    False,
                    f"{node} not an active node of an active org at block {e.block_number}",
                )
    return Check(
        "membership_active",
        True,
        f"creator org and every acting node were active at each of {steps} steps",
        {"creatorOrg": _hex(creator)},
    )


def check_algorithm_approved(h: TaskHistory) -> Check:
    created = h.created()
    if created is None:
        return Check("algorithm_approved_at_start", False, "task was never created")
    algorithm = bytes(created.args["algorithmDigest"])
    started = next((e for e in h.task_events if e.name == "TaskStarted"), None)
    until = started.position if started else created.position
    approved_at = None
    for e in h.before(until):
        if e.contract == "AlgorithmRegistry" and bytes(e.args.get("digest", ZERO)) == algorithm:
            if e.name == "AlgorithmApproved":
                approved_at = e.block_number
            elif e.name == "AlgorithmDeprecated":
                approved_at = None
    ok = approved_at is not None
    return Check(
        "algorithm_approved_at_start",
        ok,
        f"approved at block {approved_at}" if ok else "not approved when the task started",
        {"algorithmDigest": _hex(algorithm)},
    )


def check_grants(h: TaskHistory) -> Check:
    created = h.created()
    if created is None:
        return Check("grants_valid_and_metered", False, "task was never created")
    creator = bytes(created.args["creatorOrg"])
    algorithm = bytes(created.args["algorithmDigest"])
    used: list[str] = []
    for node, dataset, _version, grant in h.participants():
        if grant == ZERO:
            continue
        accepted = next(
            (
                e
                for e in h.task_events
                if e.name == "TaskAccepted" and str(e.args["node"]).lower() == node.lower()
            ),
            None,
        )
        if accepted is None:
            if h.ended_without_results():
                continue  # refused or cut short before accepting: no use was consumed
            return Check("grants_valid_and_metered", False, f"{node} never accepted")
        prior = h.before(accepted.position)
        grant_events = [
            e
            for e in prior
            if e.contract == "AuthorizationRegistry" and bytes(e.args.get("grantId", b"")) == grant
        ]
        made = next((e for e in grant_events if e.name == "GrantCreated"), None)
        if made is None:
            return Check("grants_valid_and_metered", False, f"grant {_hex(grant)} never created")
        if any(e.name == "GrantRevoked" for e in grant_events):
            return Check(
                "grants_valid_and_metered", False, f"grant {_hex(grant)} revoked before use"
            )
        pinned = bytes(made.args["algorithmDigest"])
        if (
            bytes(made.args["datasetId"]) != dataset
            or bytes(made.args["granteeOrg"]) != creator
            or pinned not in (ZERO, algorithm)
        ):
            return Check(
                "grants_valid_and_metered", False, f"grant {_hex(grant)} does not cover the task"
            )
        when = h.timestamps.get(accepted.block_number)
        if when is None or when > int(made.args["notAfter"]):
            return Check(
                "grants_valid_and_metered", False, f"grant {_hex(grant)} expired at acceptance"
            )
        metered = [
            e
            for e in h.all_events
            if e.name == "GrantUsed"
            and e.transaction_hash == accepted.transaction_hash
            and bytes(e.args["grantId"]) == grant
        ]
        if len(metered) != 1 or int(metered[0].args["used"]) > int(metered[0].args["maxUses"]):
            return Check("grants_valid_and_metered", False, f"grant {_hex(grant)} use not metered")
        used.append(f"{_hex(grant)} use {metered[0].args['used']}/{metered[0].args['maxUses']}")
    return Check(
        "grants_valid_and_metered",
        True,
        f"{len(used)} grant(s) valid at acceptance, one use each metered",
        {"grants": used},
    )


def check_inputs(h: TaskHistory) -> Check:
    anchored = {
        str(e.args["node"]).lower(): bytes(e.args["commitment"])
        for e in h.task_events
        if e.name == "InputAnchored"
    }
    compared = []
    for node, dataset, version, _grant in h.participants():
        if dataset == ZERO:
            continue
        registered = next(
            (
                bytes(e.args["merkleRoot"])
                for e in h.all_events
                if e.name == "DatasetVersionAdded"
                and bytes(e.args["datasetId"]) == dataset
                and int(e.args["version"]) == version
            ),
            None,
        )
        got = anchored.get(node.lower())
        if got is None and h.ended_without_results():
            continue  # the task ended before this participant anchored its input
        if registered is None or got != registered:
            return Check(
                "input_commitments_match_datasets",
                False,
                f"{node}: anchored input does not equal dataset {_hex(dataset)} v{version}",
            )
        compared.append({"node": node, "dataset": _hex(dataset), "version": version})
    return Check(
        "input_commitments_match_datasets",
        True,
        f"{len(compared)} input commitment(s) equal their registered dataset versions",
        {"inputs": compared},
    )


def check_results(h: TaskHistory) -> Check:
    """A completed task: every participant submitted the same digest. A task that
    ended otherwise: the end is on chain with its cause, and whatever results were
    submitted before it agree. Either way the trail accounts for the outcome."""
    digests = {
        str(e.args["node"]): bytes(e.args["resultDigest"])
        for e in h.task_events
        if e.name == "ResultSubmitted"
    }
    evidence: dict[str, Any] = {"results": {n: _hex(d) for n, d in digests.items()}}
    completed = next((e for e in h.task_events if e.name == "TaskCompleted"), None)
    nodes = {p[0] for p in h.participants()}
    if completed is not None:
        ok = (
            bool(digests)
            and set(digests) == nodes
            and len(set(digests.values())) == 1
            and bytes(completed.args["resultDigest"]) in digests.values()
        )
        detail = (
            "every participant submitted the same result digest and the task completed"
            if ok
            else "results missing or disagreeing in a completed task"
        )
        return Check("result_digests_agree", ok, detail, evidence)
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
        return Check("result_digests_agree", ok, detail, evidence)
    if any(e.name == "TaskExpired" for e in h.task_events):
        evidence["outcome"] = {"state": "EXPIRED"}
        ok = len(set(digests.values())) <= 1
        return Check("result_digests_agree", ok, "task expired before every result", evidence)
    if any(e.name == "TaskDisputed" for e in h.task_events):
        return Check("result_digests_agree", False, "result digests disagree (disputed)", evidence)
    return Check("result_digests_agree", False, "task has not finished", evidence)


#: Reason codes below this are detected by the contract itself (TaskRegistry's
#: MIN_REPORTED_REASON); from it on, a caller reports them.
MIN_REPORTED_REASON = 100


def _org_admin(history: Sequence[Event], org: bytes) -> str | None:
    """The admin key an organisation was proposed with (OrgProposed), lower-case."""
    admin = None
    for e in history:
        if (
            e.contract == "Consortium"
            and e.name == "OrgProposed"
            and bytes(e.args.get("orgId", ZERO)) == org
        ):
            admin = str(e.args.get("admin", "")).lower() or None
    return admin


def _node_org(history: Sequence[Event], node: str) -> bytes | None:
    org = None
    for e in history:
        if (
            e.contract == "Consortium"
            and e.name == "NodeRegistered"
            and str(e.args["node"]).lower() == node.lower()
        ):
            org = bytes(e.args["orgId"])
    return org


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
                and bytes(e.args.get("grantId", b"")) == g
                for e in prior
            )
        ]
        return bool(revoked), (
            f"grant {_hex(revoked[0])} was revoked" if revoked else "no participant grant revoked"
        )
    if code == Reason.PARTICIPANT_INACTIVE:
        creator = bytes(created.args["creatorOrg"])
        if not _org_active(prior, creator):
            return True, f"creator org {_hex(creator)} was not active"
        inactive = [p[0] for p in h.participants() if not _node_active(prior, p[0])]
        return bool(inactive), (
            f"participant {inactive[0]} was not active" if inactive else "every member active"
        )
    if code == Reason.ALGORITHM_DEPRECATED:
        algorithm = bytes(created.args["algorithmDigest"])
        approved = False
        for e in prior:
            if e.contract == "AlgorithmRegistry" and bytes(e.args.get("digest", ZERO)) == algorithm:
                if e.name == "AlgorithmApproved":
                    approved = True
                elif e.name == "AlgorithmDeprecated":
                    approved = False
        return not approved, ("algorithm no longer approved" if not approved else "still approved")
    return False, f"code {code} is no lapse the contract detects"


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
        return Check(name, True, "the task did not fail: no reporter to authorise")
    created = h.created()
    if created is None:
        return Check(name, False, "failure of a task that was never created")
    event = failed[0]
    reporter = str(event.args["reporter"])
    code = int(event.args["reasonCode"])
    prior = h.before(event.position)
    creator = bytes(created.args["creatorOrg"])
    participants = {p[0].lower() for p in h.participants()}
    who = reporter.lower()
    evidence: dict[str, Any] = {
        "reporter": reporter,
        "reasonCode": code,
        "block": event.block_number,
        "creatorOrg": _hex(creator),
    }
    if who in participants and _node_active(prior, reporter):
        role = "an active participant node of an active org"
    elif _org_active(prior, creator) and (
        who == _org_admin(prior, creator)
        or (_node_org(prior, reporter) == creator and _node_active(prior, reporter))
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


def deployment_checks(results: Sequence[Any]) -> list[Check]:
    """The ledger's deployment-binding results (name, passed, detail, evidence) as checks."""
    return [Check(r.name, bool(r.passed), str(r.detail), dict(r.evidence)) for r in results]


def check_params_commitment(h: TaskHistory, disclosed: ParamsEnvelope) -> Check:
    """The parameters a participant disclosed are the ones the creator committed to."""
    created = h.created()
    if created is None:
        return Check("params_commitment", False, "task was never created")
    committed = bytes(created.args["paramsDigest"])
    ok = disclosed.digest == committed
    return Check(
        "params_commitment",
        ok,
        "the disclosed parameters and salt hash to the on-chain paramsDigest"
        if ok
        else "the disclosed parameters do not hash to the on-chain paramsDigest",
        {"paramsDigest": _hex(committed), "params": dict(disclosed.params)},
    )


def _checkpoints(h: TaskHistory, node: str) -> list[tuple[int, bytes]]:
    """(tree size, root) of every checkpoint of ``node``'s log of this task, in order."""
    log_id = evidence_log_id(node, h.task_id)
    return [
        (int(e.args["treeSize"]), bytes(e.args["rootHash"]))
        for e in h.all_events
        if e.contract == "AnchorLog"
        and e.name == "Checkpointed"
        and bytes(e.args.get("logId", b"")) == log_id
    ]


def _anchored_prefix(entries: Sequence[Entry]) -> int:
    """Length of the transcript before its trailing late deliveries: what a node's
    result root covers (it records messages it never read only after submitting)."""
    size = len(entries)
    while size > 0 and entries[size - 1].kind == "received-late":
        size -= 1
    return size


def check_evidence(h: TaskHistory, transcripts: Mapping[str, Sequence[Entry]]) -> Check:
    """Each transcript hashes to the root its node anchored with its result.

    A transcript may extend that prefix with late deliveries only (``received-late``:
    messages delivered to the node but never read by the protocol, recorded when its
    part of the task ended, after the result). The extended transcript must then be
    exactly the node's latest checkpoint in its AnchorLog log of the task (size and
    root), so the remainder is anchored too and cannot be written after the fact.
    Whether or not there is a remainder, a transcript shorter than that latest
    checkpoint is refused: entries the node anchored are missing.
    """
    name = "evidence_roots_match"
    anchored = {
        str(e.args["node"]).lower(): bytes(e.args["evidenceRoot"])
        for e in h.task_events
        if e.name == "ResultSubmitted"
    }
    if h.created() is None:
        return Check(name, False, f"no such task on chain: {_hex(h.task_id)}")
    given = {k.lower(): v for k, v in transcripts.items()}
    roots: dict[str, str] = {}
    late: dict[str, int] = {}
    for node, _d, _v, _g in h.participants():
        if node.lower() not in anchored and h.ended_without_results():
            continue  # never submitted: no root was anchored to match a transcript against
        entries = given.get(node.lower())
        if entries is None:
            return Check(name, False, f"no transcript from {node}, which anchored a result")
        if not chain_intact(entries):
            return Check(name, False, f"transcript of {node} is not hash-chained")
        prefix = _anchored_prefix(entries)
        root = transcript_root(entries[:prefix])
        if anchored.get(node.lower()) != root:
            return Check(name, False, f"transcript of {node} does not hash to its anchor")
        checkpoints = _checkpoints(h, node)
        latest = checkpoints[-1] if checkpoints else None
        full = (len(entries), transcript_root(entries))
        if prefix < len(entries) and latest != full:
            return Check(
                name,
                False,
                f"transcript of {node} adds {len(entries) - prefix} late deliveries after its "
                f"anchored result, but its latest AnchorLog checkpoint "
                f"({'none' if latest is None else f'size {latest[0]}'}) is not that transcript",
            )
        if latest is not None and latest[0] > len(entries):
            return Check(
                name,
                False,
                f"transcript of {node} has {len(entries)} entries, its latest AnchorLog "
                f"checkpoint covers {latest[0]}: anchored entries are missing",
            )
        roots[node] = _hex(root)
        if prefix < len(entries):
            late[node] = len(entries) - prefix
    detail = f"{len(roots)} transcript(s) hash to their anchored roots"
    if late:
        detail += (
            f"; {sum(late.values())} late deliveries after them, covered by the nodes' "
            "latest AnchorLog checkpoints"
        )
    return Check(name, True, detail, {"roots": roots, "lateDeliveries": late})


Message = tuple[str, str, str, bytes]  # (sender, receiver, step, message digest)


def _message(m: Message) -> str:
    return f"{m[2]!r} from {m[0]} to {m[1]}"


def check_transcripts_agree(h: TaskHistory, transcripts: Mapping[str, Sequence[Entry]]) -> Check:
    """What A recorded as sent to B is exactly what B recorded as received from A.

    A node records a message as sent once the peer's transport filed it, and as received
    when its protocol reads it, or as ``received-late`` when its part of the task ends
    with the message still unread (a threshold protocol finishes once enough peers
    answered). A node *finished* when it submitted a result on chain; one that did not
    may have gone away at any point (crashed, lost its inbox, stopped), so its
    transcript may end early. The rules, per message:

    * sent and received (in time or late): agrees; late ones are counted and named;
    * sent but never recorded by its receiver: passes only if the receiver did not
      finish (it went away holding the message unread); fails if it finished;
    * received but never recorded as sent: passes only if the sender did not finish,
      and for at most one message per such sender (a crash between a send and its
      record loses the record of that node's last send only); fails otherwise;
    * a message to or from a node that is not a participant of the task fails.

    Every peer that went away with messages unaccounted for is named in the detail.
    A participant that finished but whose transcript was not given fails the check, so
    it never passes on nothing; a participant that did not finish and gave no
    transcript counts as an empty one.
    """
    name = "transcripts_agree_pairwise"
    if h.created() is None:
        return Check(name, False, f"no such task on chain: {_hex(h.task_id)}")
    participants = {p[0].lower(): p[0] for p in h.participants()}
    finished = {str(e.args["node"]).lower() for e in h.task_events if e.name == "ResultSubmitted"}
    given = {k.lower(): v for k, v in transcripts.items()}
    missing = sorted(participants[n] for n in finished if n in participants and n not in given)
    if missing:
        return Check(
            name,
            False,
            f"no transcript from {', '.join(missing)}, which submitted a result: its "
            "messages cannot be compared",
            {"missingTranscripts": missing},
        )
    strangers = sorted(n for n in set(given) - set(participants) if given[n])
    if strangers:
        return Check(name, False, f"transcript(s) from non-participant(s) {', '.join(strangers)}")
    given = {n: entries for n, entries in given.items() if n in participants}
    sent: set[Message] = set()
    received: set[Message] = set()
    late: set[Message] = set()
    for node, entries in given.items():
        for e in entries:
            if e.kind == "sent":
                sent.add((node, e.peer.lower(), e.step, e.digest))
            elif e.kind == "received":
                received.add((e.peer.lower(), node, e.step, e.digest))
            elif e.kind == "received-late":
                late.add((e.peer.lower(), node, e.step, e.digest))
    evidence: dict[str, Any] = {}
    twice = sorted(received & late)
    if twice:
        return Check(name, False, f"{_message(twice[0])} is recorded as received twice")
    got = received | late
    outsiders = sorted(
        m for m in sent | got if m[0] not in participants or m[1] not in participants
    )
    if outsiders:
        return Check(name, False, f"{_message(outsiders[0])} names a non-participant")

    went_away: set[str] = set()
    undelivered = sorted(sent - got)
    for m in undelivered:
        if m[1] in finished:
            return Check(
                name,
                False,
                f"{_message(m)} was recorded as sent, but {participants[m[1]]} never recorded "
                "receiving it although it submitted a result",
                {"message": _message(m)},
            )
        went_away.add(m[1])
    unconfirmed = sorted(got - sent)
    per_sender: dict[str, int] = {}
    for m in unconfirmed:
        if m[0] in finished:
            return Check(
                name,
                False,
                f"{_message(m)} was recorded as received by {participants[m[1]]}, but "
                f"{participants[m[0]]} never recorded sending it although it submitted a result",
                {"message": _message(m)},
            )
        per_sender[m[0]] = per_sender.get(m[0], 0) + 1
        if per_sender[m[0]] > 1:
            return Check(
                name,
                False,
                f"{participants[m[1]]} recorded {per_sender[m[0]]}+ messages from "
                f"{participants[m[0]]} that it never recorded sending (a sender that went "
                f"away can lose the record of its last send only), e.g. {_message(m)}",
                {"message": _message(m)},
            )
        went_away.add(m[0])
    gone = sorted(participants[n] for n in went_away)
    late_by: dict[str, int] = {}
    for m in late:
        late_by[participants[m[1]]] = late_by.get(participants[m[1]], 0) + 1
    evidence = {
        "messages": len(sent | got),
        "deliveredLate": len(late),
        "lateByReceiver": dict(sorted(late_by.items())),
        "undelivered": len(undelivered),
        "unconfirmed": len(unconfirmed),
        "wentAway": gone,
    }
    detail = f"{len(sent & got)} message(s) recorded identically by sender and receiver"
    if late:
        detail += f", {len(late)} of them delivered late (received after the protocol finished)"
    if undelivered:
        detail += (
            f"; {len(undelivered)} sent to a node that went away before reading them "
            "(it submitted no result)"
        )
    if unconfirmed:
        detail += (
            f"; {len(unconfirmed)} received from a node that went away before recording "
            "the send (its last)"
        )
    if gone:
        detail += f"; went away: {', '.join(gone)}"
    if not given:
        detail = "no transcripts given and no participant submitted a result: nothing to compare"
    return Check(name, True, detail, evidence)


CHECKS: tuple[Callable[[TaskHistory], Check], ...] = (
    check_task_created,
    check_lifecycle_order,
    check_membership,
    check_algorithm_approved,
    check_grants,
    check_inputs,
    check_results,
    check_failure_reporter,
)


def verify_task(
    history: TaskHistory,
    transcripts: Mapping[str, Sequence[Entry]],
    params: ParamsEnvelope | None = None,
    deployment: Sequence[Check] = (),
) -> list[Check]:
    """Every check of one task; `deployment` are the chain-binding checks of the
    deployment it ran on (see `auditor.replay.deployment_checks`), reported first."""
    checks = list(deployment)
    if history.created() is None:
        # Nothing on chain to check: every other check would pass or fail on nothing.
        return [*checks, check_task_created(history)]
    checks += [check(history) for check in CHECKS]
    checks.append(check_evidence(history, transcripts))
    checks.append(check_transcripts_agree(history, transcripts))
    if params is not None:
        checks.append(check_params_commitment(history, params))
    return checks
