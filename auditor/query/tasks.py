"""Tasks: search, one task's summary, its trail, and who may see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from auditor.index import schema
from auditor.query.paging import Page, fetch_page
from auditor.query.values import ZERO32, hx, latest_algorithms, latest_rows, latest_status
from auditor.query.values import node_orgs as load_node_orgs
from auditor.query.values import org_names as load_org_names
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.tasks import reason_name

TASK_COLUMNS = (
    "task",
    "creatorOrg",
    "creatorOrgName",
    "algorithm",
    "algorithmName",
    "algorithmVersion",
    "kind",
    "kindName",
    "status",
    "participants",
    "deadline",
    "blockNumber",
    "blockTime",
    "txHash",
)
TRAIL_COLUMNS = (
    "blockNumber",
    "logIndex",
    "blockTime",
    "txHash",
    "step",
    "actorNode",
    "actorOrg",
    "actorOrgName",
    "grant",
    "digest",
    "evidenceRoot",
    "round",
    "reasonCode",
    "reason",
)
#: The task statuses the index records (see ``auditor.index.project``).
TASK_STATUSES = ("created", "running", "completed", "disputed", "failed", "expired")
_ENDED = ("completed", "disputed", "failed", "expired")


def kind_name(kind: int | None) -> str | None:
    if kind is None:
        return None
    try:
        return AlgorithmKind(int(kind)).name
    except ValueError:
        return f"UNKNOWN_KIND_{int(kind)}"


@dataclass(frozen=True)
class TaskFilter:
    """What the task search narrows by; every field None means "any".

    ``org`` matches the creator organisation or an organisation one of whose nodes holds
    a seat; ``since`` (inclusive) and ``until`` (exclusive) bound the creation block's
    time; ``text`` is the search box: a task id hex prefix (with or without ``0x``) or a
    case-insensitive substring of the algorithm's name.
    """

    org: bytes | None = None
    dataset: bytes | None = None
    algorithm: bytes | None = None
    kind: int | None = None
    status: str | None = None
    since: int | None = None
    until: int | None = None
    text: str | None = None


def _org_took_part(task_id: ColumnElement[Any], org: bytes) -> ColumnElement[bool]:
    """A seat of ``task_id`` is held by a node of ``org``."""
    p = schema.task_participants
    n = schema.node_records
    return (
        select(p.c.task_id)
        .join(n, n.c.node == p.c.node)
        .where(p.c.task_id == task_id, n.c.org_id == org)
        .exists()
    )


def _visible(t: Any, org: bytes) -> ColumnElement[bool]:
    return or_(t.c.creator_org == org, _org_took_part(t.c.task_id, org))


def _hex_prefix(text: str) -> tuple[bytes, bytes] | None:
    """The byte range of task ids starting with a hex prefix; None when not hex."""
    digits = text.lower().removeprefix("0x")
    if not digits or len(digits) > 64 or any(c not in "0123456789abcdef" for c in digits):
        return None
    low = bytes.fromhex((digits + "0" * 64)[:64])
    high = bytes.fromhex((digits + "f" * 64)[:64])
    return low, high


def search_tasks(
    conn: Connection, f: TaskFilter, *, visible_to: bytes | None, limit: int, offset: int
) -> Page:
    """Tasks matching ``f``, newest first. ``visible_to`` (an org id) keeps only tasks
    that organisation created or holds a seat in; None (regulators) keeps all."""
    t = schema.tasks
    a = latest_algorithms()
    o = latest_rows(schema.organisations, "org_id")
    status = latest_status("task", t.c.task_id)
    query = (
        select(
            t,
            o.c.name.label("creator_name"),
            a.c.name.label("algorithm_name"),
            a.c.version.label("algorithm_version"),
            a.c.kind.label("kind"),
            status.label("status"),
        )
        .outerjoin(a, a.c.digest == t.c.algorithm_digest)
        .outerjoin(o, o.c.org_id == t.c.creator_org)
        .order_by(t.c.block_number.desc(), t.c.log_index.desc())
    )
    if visible_to is not None:
        query = query.where(_visible(t, visible_to))
    if f.org is not None:
        query = query.where(_visible(t, f.org))
    if f.dataset is not None:
        p = schema.task_participants
        query = query.where(
            select(p.c.task_id)
            .where(p.c.task_id == t.c.task_id, p.c.dataset_id == f.dataset)
            .exists()
        )
    if f.algorithm is not None:
        query = query.where(t.c.algorithm_digest == f.algorithm)
    if f.kind is not None:
        query = query.where(a.c.kind == f.kind)
    if f.status is not None:
        query = query.where(latest_status("task", t.c.task_id) == f.status)
    if f.since is not None:
        query = query.where(t.c.block_time >= f.since)
    if f.until is not None:
        query = query.where(t.c.block_time < f.until)
    if f.text:
        by_name = a.c.name.ilike(f"%{_escape_like(f.text)}%", escape="\\")
        prefix = _hex_prefix(f.text)
        if prefix is None:
            query = query.where(by_name)
        else:
            query = query.where(
                or_(and_(t.c.task_id >= prefix[0], t.c.task_id <= prefix[1]), by_name)
            )

    def render(r: Any) -> dict[str, Any]:
        kind = None if r["kind"] is None else int(r["kind"])
        return {
            "task": hx(r["task_id"]),
            "creatorOrg": hx(r["creator_org"]),
            "creatorOrgName": r["creator_name"],
            "algorithm": hx(r["algorithm_digest"]),
            "algorithmName": r["algorithm_name"],
            "algorithmVersion": r["algorithm_version"],
            "kind": kind,
            "kindName": kind_name(kind),
            "status": r["status"],
            "participants": int(r["participant_count"]),
            "deadline": int(r["deadline"]),
            "blockNumber": int(r["block_number"]),
            "blockTime": int(r["block_time"]),
            "txHash": hx(r["tx_hash"]),
        }

    return fetch_page(conn, query, limit, offset, render)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def task_orgs(conn: Connection, task_id: bytes) -> set[bytes]:
    """The creator's organisation and every seat holder's: who may see the trail."""
    t = schema.tasks
    p = schema.task_participants
    n = schema.node_records
    creators = conn.execute(select(t.c.creator_org).where(t.c.task_id == task_id)).scalars()
    seats = conn.execute(
        select(n.c.org_id).join(p, p.c.node == n.c.node).where(p.c.task_id == task_id)
    ).scalars()
    return {bytes(v) for v in creators} | {bytes(v) for v in seats}


def task_summary(conn: Connection, task_id: bytes) -> dict[str, Any] | None:
    """Everything a task page heads with; None when the index has no such task."""
    t = schema.tasks
    row = conn.execute(select(t).where(t.c.task_id == task_id)).mappings().first()
    if row is None:
        return None
    names = load_org_names(conn)
    nodes = load_node_orgs(conn)
    a = latest_algorithms()
    algorithm = (
        conn.execute(select(a).where(a.c.digest == row["algorithm_digest"])).mappings().first()
    )
    s = schema.status_history
    history = (
        conn.execute(
            select(s)
            .where(s.c.entity == "task", s.c.entity_id == task_id)
            .order_by(s.c.block_number, s.c.log_index)
        )
        .mappings()
        .all()
    )
    ended = next((h for h in reversed(history) if h["status"] in _ENDED), None)
    p = schema.task_participants
    seats = conn.execute(select(p).where(p.c.task_id == task_id).order_by(p.c.position)).mappings()
    participants = []
    for seat in seats:
        org = nodes.get(bytes(seat["node"]))
        grant = bytes(seat["grant_id"])
        participants.append(
            {
                "position": int(seat["position"]),
                "node": hx(seat["node"]),
                "org": hx(org),
                "orgName": None if org is None else names.get(org),
                "dataset": hx(seat["dataset_id"]),
                "datasetVersion": int(seat["dataset_version"]),
                "grant": None if grant == ZERO32 else hx(grant),
            }
        )
    trail = task_trail(conn, task_id, names=names, nodes=nodes)
    results = [
        {
            "node": step["actorNode"],
            "org": step["actorOrg"],
            "orgName": step["actorOrgName"],
            "resultDigest": step["digest"],
            "evidenceRoot": step["evidenceRoot"],
            "blockNumber": step["blockNumber"],
            "blockTime": step["blockTime"],
        }
        for step in trail
        if step["step"] == "ResultSubmitted"
    ]
    completed = next((s["digest"] for s in trail if s["step"] == "TaskCompleted"), None)
    failed = next((s for s in trail if s["step"] == "TaskFailed"), None)
    kind = None if algorithm is None else int(algorithm["kind"])
    creator = bytes(row["creator_org"])
    return {
        "task": hx(task_id),
        "creatorOrg": hx(creator),
        "creatorOrgName": names.get(creator),
        "algorithm": {
            "digest": hx(row["algorithm_digest"]),
            "name": None if algorithm is None else algorithm["name"],
            "version": None if algorithm is None else algorithm["version"],
            "kind": kind,
            "kindName": kind_name(kind),
        },
        "paramsDigest": hx(row["params_digest"]),
        "deadline": int(row["deadline"]),
        "status": history[-1]["status"] if history else None,
        "createdBlock": int(row["block_number"]),
        "createdTime": int(row["block_time"]),
        "createdTx": hx(row["tx_hash"]),
        "endedBlock": None if ended is None else int(ended["block_number"]),
        "endedTime": None if ended is None else int(ended["block_time"]),
        "participants": participants,
        "results": results,
        "resultDigest": completed,
        "failure": None
        if failed is None
        else {
            "reasonCode": failed["reasonCode"],
            "reason": failed["reason"],
            "reporter": failed["actorNode"],
            "reporterOrg": failed["actorOrg"],
            "reporterOrgName": failed["actorOrgName"],
        },
        "steps": len(trail),
    }


def task_trail(
    conn: Connection,
    task_id: bytes,
    *,
    names: dict[bytes, str] | None = None,
    nodes: dict[bytes, bytes] | None = None,
) -> list[dict[str, Any]]:
    """Every TaskRegistry event naming the task, in chain order, with the acting node's
    organisation resolved (the creator's organisation for ``TaskCreated``)."""
    st = schema.task_steps
    rows = (
        conn.execute(
            select(st).where(st.c.task_id == task_id).order_by(st.c.block_number, st.c.log_index)
        )
        .mappings()
        .all()
    )
    if not rows:
        return []
    names = load_org_names(conn) if names is None else names
    nodes = load_node_orgs(conn) if nodes is None else nodes
    trail = []
    for r in rows:
        node = None if r["actor_node"] is None else bytes(r["actor_node"])
        org = bytes(r["actor_org"]) if r["actor_org"] is not None else nodes.get(node or b"")
        grant = None if r["grant_id"] is None else bytes(r["grant_id"])
        code = None if r["reason_code"] is None else int(r["reason_code"])
        trail.append(
            {
                "blockNumber": int(r["block_number"]),
                "logIndex": int(r["log_index"]),
                "blockTime": int(r["block_time"]),
                "txHash": hx(r["tx_hash"]),
                "step": r["step"],
                "actorNode": hx(node),
                "actorOrg": hx(org),
                "actorOrgName": None if org is None else names.get(org),
                "grant": None if grant is None or grant == ZERO32 else hx(grant),
                "digest": hx(r["digest"]),
                "evidenceRoot": hx(r["evidence_root"]),
                "round": None if r["round"] is None else int(r["round"]),
                "reasonCode": code,
                "reason": None if code is None else reason_name(code),
            }
        )
    return trail
