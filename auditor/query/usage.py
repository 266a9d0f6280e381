"""Usage per organisation per period, and failures grouped by reason."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Select, func, or_, select

from auditor.index import schema
from auditor.query.values import hx, org_names
from ledger.clients.tasks import reason_name

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
USAGE_COLUMNS = ("org", "orgName", "periodStart", "tasksCreated", "tasksJoined", "grantUses")
REFUSAL_COLUMNS = ("step", "reasonCode", "reason", "count")
_DAY = 86_400


def period_start(period: Period, t: int) -> int:
    """The UTC start of the day, ISO week (Monday) or calendar month holding ``t``."""
    day = t - t % _DAY
    if period == "day":
        return day
    if period == "week":
        days = day // _DAY
        return (days - (days + 3) % 7) * _DAY  # 1970-01-01 was a Thursday
    start = datetime.fromtimestamp(t, UTC).replace(day=1, hour=0, minute=0, second=0)
    return int(start.timestamp())


def _in_range(query: Select[Any], column: Any, since: int | None, until: int | None) -> Any:
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def usage(
    conn: Connection,
    *,
    period: Period,
    since: int | None,
    until: int | None,
    org_id: bytes | None,
) -> list[dict[str, Any]]:
    """Per organisation and period (by block time, ``since`` inclusive, ``until``
    exclusive): tasks it created, tasks one of its nodes held a seat in (each task once),
    and uses consumed of grants it gave (its data used under a grant). Only non-empty
    (organisation, period) pairs appear, by period then organisation name."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    t = schema.tasks
    p = schema.task_participants
    n = schema.node_records
    g = schema.grants
    u = schema.grant_uses
    created = _in_range(select(t.c.creator_org, t.c.block_time), t.c.block_time, since, until)
    joined = _in_range(
        select(n.c.org_id, t.c.block_time)
        .distinct()
        .select_from(p)
        .join(t, t.c.task_id == p.c.task_id)
        .join(n, n.c.node == p.c.node)
        .add_columns(t.c.task_id),
        t.c.block_time,
        since,
        until,
    )
    # Every GrantUsed carries the grant's cumulative count: one use for a task's
    # acceptance, a quota block or period's worth for a settlement of a metered service
    # (AuthorizationRegistry.settleUses). A use is counted as the step from the grant's
    # previous event, so a settlement counts as the uses it settled.
    previous = (
        func.lag(u.c.used, 1, 0)
        .over(partition_by=u.c.grant_id, order_by=(u.c.block_number, u.c.log_index))
        .label("previous")
    )
    steps = select(u.c.grant_id, u.c.used, u.c.block_time, previous).subquery("steps")
    used = _in_range(
        select(g.c.grantor_org, steps.c.block_time, steps.c.used - steps.c.previous).join(
            g, g.c.grant_id == steps.c.grant_id
        ),
        steps.c.block_time,
        since,
        until,
    )
    if org_id is not None:
        created = created.where(t.c.creator_org == org_id)
        joined = joined.where(n.c.org_id == org_id)
        used = used.where(g.c.grantor_org == org_id)
    counts: dict[tuple[int, bytes], dict[str, int]] = defaultdict(
        lambda: {"tasksCreated": 0, "tasksJoined": 0, "grantUses": 0}
    )

    def tally(rows: Iterable[Any], key: str) -> None:
        for row in rows:
            weight = int(row[2]) if key == "grantUses" else 1
            counts[(period_start(period, int(row[1])), bytes(row[0]))][key] += weight

    tally(conn.execute(created), "tasksCreated")
    tally(conn.execute(joined), "tasksJoined")
    tally(conn.execute(used), "grantUses")
    names = org_names(conn)
    ordered = sorted(counts.items(), key=lambda kv: (kv[0][0], names.get(kv[0][1], ""), kv[0][1]))
    return [
        {"org": hx(org), "orgName": names.get(org), "periodStart": start, **c}
        for (start, org), c in ordered
    ]


def refusals(
    conn: Connection, *, since: int | None, until: int | None, org_id: bytes | None
) -> list[dict[str, Any]]:
    """Every step that carries a reason code (a refusal, a reported or detected failure),
    counted per step and code, most frequent first. ``org_id`` keeps the steps of tasks
    that organisation created or held a seat in."""
    st = schema.task_steps
    count = func.count().label("count")
    query = _in_range(
        select(st.c.step, st.c.reason_code, count)
        .where(st.c.reason_code.is_not(None))
        .group_by(st.c.step, st.c.reason_code),
        st.c.block_time,
        since,
        until,
    )
    if org_id is not None:
        t = schema.tasks
        p = schema.task_participants
        n = schema.node_records
        created = select(t.c.task_id).where(t.c.creator_org == org_id)
        seated = select(p.c.task_id).join(n, n.c.node == p.c.node).where(n.c.org_id == org_id)
        query = query.where(or_(st.c.task_id.in_(created), st.c.task_id.in_(seated)))
    rows = conn.execute(query.order_by(count.desc(), st.c.step, st.c.reason_code)).all()
    return [
        {"step": step, "reasonCode": int(code), "reason": reason_name(int(code)), "count": int(c)}
        for step, code, c in rows
    ]
