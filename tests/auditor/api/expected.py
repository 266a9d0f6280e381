"""What the API should answer, computed independently of ``auditor.query``: from the
raw ``events`` table (every event's JSON args, as decoded) and from the chain itself
(the typed contract clients). Nothing here reads the typed index tables."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from auditor.index import schema
from tests.auditor.api.scenario import History


@dataclass(frozen=True)
class Event:
    block: int
    log_index: int
    time: int
    tx: str
    contract: str
    name: str
    args: dict[str, Any]


def events(engine: Engine) -> list[Event]:
    e = schema.events
    with engine.connect() as conn:
        rows = conn.execute(select(e).order_by(e.c.block_number, e.c.log_index)).mappings()
        return [
            Event(
                int(r["block_number"]),
                int(r["log_index"]),
                int(r["block_time"]),
                "0x" + bytes(r["tx_hash"]).hex(),
                r["contract"],
                r["name"],
                json.loads(r["args"]),
            )
            for r in rows
        ]


def named(evs: list[Event], *names: str) -> list[Event]:
    return [e for e in evs if e.name in names]


def node_orgs(evs: list[Event]) -> dict[str, str]:
    return {e.args["node"]: e.args["orgId"] for e in named(evs, "NodeRegistered")}


def task_orgs(evs: list[Event], task: str) -> set[str]:
    """The creator's org and every seat's org, from the TaskCreated event."""
    nodes = node_orgs(evs)
    created = next(e for e in named(evs, "TaskCreated") if e.args["taskId"] == task)
    return {created.args["creatorOrg"]} | {nodes[p["node"]] for p in created.args["participants"]}


def task_ids_newest_first(evs: list[Event]) -> list[str]:
    return [e.args["taskId"] for e in reversed(named(evs, "TaskCreated"))]


def chain_status(h: History, task: str) -> str:
    """The task's state as the TaskRegistry contract reports it now."""
    state = h.consortium.orgs["bank-a"].clients.tasks.state(bytes.fromhex(task[2:]))
    return state.name.lower()


def trail(evs: list[Event], task: str) -> list[tuple[int, int, str, str]]:
    return [
        (e.block, e.log_index, e.name, e.tx)
        for e in evs
        if e.contract == "TaskRegistry" and e.args.get("taskId") == task
    ]


def usage_counts(evs: list[Event]) -> dict[str, tuple[int, int, int]]:
    """Per org id: (tasks created, tasks joined, uses of the grants it gave)."""
    nodes = node_orgs(evs)
    created = Counter(e.args["creatorOrg"] for e in named(evs, "TaskCreated"))
    joined: Counter[str] = Counter()
    for e in named(evs, "TaskCreated"):
        for org in {nodes[p["node"]] for p in e.args["participants"]}:
            joined[org] += 1
    grantor = {e.args["grantId"]: e.args["grantorOrg"] for e in named(evs, "GrantCreated")}
    uses: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()  # GrantUsed.used is the grant's running total
    for e in named(evs, "GrantUsed"):
        grant = e.args["grantId"]
        uses[grantor[grant]] += e.args["used"] - cumulative[grant]
        cumulative[grant] = e.args["used"]
    orgs = set(created) | set(joined) | set(uses)
    return {o: (created[o], joined[o], uses[o]) for o in orgs}
