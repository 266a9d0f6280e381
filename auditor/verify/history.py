"""A task's event history and the replay of membership state "as of" any event.

No contract view is trusted: state at block N is rebuilt by replaying events up to N,
which is what lets the auditor answer "was this node active when it accepted?" long
after the fact. Events are filtered by id without raising, so one malformed event (a
wrong-length id, say) cannot hide the rest of the history from the checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auditor.verify.check import maybe_bytes
from ledger.events import Event

ZERO = bytes(32)
TERMINAL = ("TaskCompleted", "TaskDisputed", "TaskFailed", "TaskExpired")
NODE_STEPS = ("TaskAccepted", "InputAnchored", "CheckpointAnchored", "ResultSubmitted")


def hex_(b: bytes) -> str:
    return "0x" + b.hex()


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
            if e.contract == "TaskRegistry" and maybe_bytes(e.args.get("taskId")) == self.task_id
        ]

    def created(self) -> Event | None:
        found = [e for e in self.task_events if e.name == "TaskCreated"]
        return found[0] if len(found) == 1 else None

    def participants(self) -> list[tuple[str, bytes, int, bytes]]:
        created = self.created()
        if created is None:
            return []
        # A malformed id reads as empty bytes: not a 32-byte id, so the checks that
        # use it fail on it (`digest32`), and listing participants never raises on it.
        return [
            (
                str(p["node"]),
                maybe_bytes(p["datasetId"]) or b"",
                int(p["datasetVersion"]),
                maybe_bytes(p["grantId"]) or b"",
            )
            for p in created.args["participants"]
        ]

    def ended_without_results(self) -> bool:
        """Failed or expired: some participants may never have anchored evidence."""
        return any(e.name in ("TaskFailed", "TaskExpired") for e in self.task_events)

    def before(self, position: tuple[int, int]) -> list[Event]:
        return [e for e in self.all_events if e.position < position]

    def by_node(self, event: str) -> dict[str, Event]:
        """This task's ``event`` events keyed by the acting node (lower-case address)."""
        return {str(e.args["node"]).lower(): e for e in self.task_events if e.name == event}


def algorithm_proposal(h: TaskHistory) -> Event | None:
    """The ``AlgorithmProposed`` event of the task's algorithm digest: its name and kind
    on chain, what checks that apply to some algorithms only go by."""
    created = h.created()
    if created is None:
        return None
    digest = maybe_bytes(created.args.get("algorithmDigest"))
    for e in h.all_events:
        if (
            e.contract == "AlgorithmRegistry"
            and e.name == "AlgorithmProposed"
            and maybe_bytes(e.args.get("digest")) == digest
        ):
            return e
    return None


def algorithm_name(h: TaskHistory) -> str | None:
    """The name the task's algorithm digest was proposed under."""
    proposal = algorithm_proposal(h)
    return None if proposal is None else str(proposal.args["name"])


def algorithm_kind(h: TaskHistory) -> int | None:
    """The kind (``ledger.clients.algorithms.AlgorithmKind``) it was proposed as."""
    proposal = algorithm_proposal(h)
    return None if proposal is None else int(proposal.args["kind"])


def node_active(history: Sequence[Event], node: str) -> bool:
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


def org_active(history: Sequence[Event], org: bytes) -> bool:
    active = False
    for e in history:
        if e.contract == "Consortium" and maybe_bytes(e.args.get("orgId")) == org:
            if e.name in ("OrgAdmitted", "OrgReinstated"):
                active = True
            elif e.name == "OrgSuspended":
                active = False
    return active


def org_admin(history: Sequence[Event], org: bytes) -> str | None:
    """The admin key an organisation was proposed with (OrgProposed), lower-case."""
    admin = None
    for e in history:
        if (
            e.contract == "Consortium"
            and e.name == "OrgProposed"
            and maybe_bytes(e.args.get("orgId")) == org
        ):
            admin = str(e.args.get("admin", "")).lower() or None
    return admin


def node_org(history: Sequence[Event], node: str) -> bytes | None:
    org = None
    for e in history:
        if (
            e.contract == "Consortium"
            and e.name == "NodeRegistered"
            and str(e.args["node"]).lower() == node.lower()
        ):
            org = bytes(e.args["orgId"])
    return org
