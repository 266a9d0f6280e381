"""``auditor.query`` on SQLite and on PostgreSQL, against what the ``events`` table and
the chain say (see ``expected``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection

from auditor.index.store import IndexStore
from auditor.query import anchors, datasets, grants, orgs, tasks, usage
from auditor.query.paging import MAX_LIMIT, Page
from ledger.roles import Role
from tests.auditor.api import expected
from tests.auditor.api.expected import Event
from tests.auditor.api.scenario import History
from tests.node.conftest import BACKENDS, database_url

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, history: History, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IndexStore]:
    """The history indexed afresh into each backend (small pages: many page joins)."""
    for url in database_url(str(request.param), tmp_path_factory.mktemp("q")):
        s = history.index_into(url, page_size=4)
        yield s
        s.close()


@pytest.fixture(scope="module")
def evs(store: IndexStore) -> list[Event]:
    return expected.events(store.engine)


@pytest.fixture
def conn(store: IndexStore) -> Iterator[Connection]:
    with store.engine.connect() as c:
        yield c


def hx(value: bytes) -> str:
    return "0x" + value.hex()


def all_pages(fetch: Any, limit: int) -> list[dict[str, Any]]:
    """Every item, page by page; checks each page's bookkeeping on the way."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page: Page = fetch(limit=limit, offset=offset)
        assert page.limit == limit and page.offset == offset
        assert len(page.items) <= limit
        items += page.items
        offset = page.next_offset
    assert len(items) == page.total
    return items


def test_orgs_and_their_status_history(
    conn: Connection, evs: list[Event], history: History
) -> None:
    proposed = expected.named(evs, "OrgProposed")
    page = orgs.list_orgs(conn, role=None, status=None, limit=MAX_LIMIT, offset=0)
    assert [(o["org"], o["name"], o["roles"], o["admin"]) for o in page.items] == [
        (e.args["orgId"], e.args["name"], e.args["roles"], e.args["admin"]) for e in proposed
    ]
    consortium = history.consortium.orgs["bank-a"].clients.consortium
    for item in page.items:
        assert item["status"] == "active"
        assert consortium.is_active_org(bytes.fromhex(item["org"][2:]))
    regulators = orgs.list_orgs(conn, role=int(Role.REGULATOR), status=None, limit=10, offset=0)
    assert [o["name"] for o in regulators.items] == ["regulator"]
    assert regulators.items[0]["roleNames"] == "provider,regulator"
    assert orgs.list_orgs(conn, role=None, status="suspended", limit=10, offset=0).total == 0
    bank_b = history.consortium.orgs["bank-b"].org_id
    assert [h["status"] for h in orgs.org_history(conn, bank_b)] == [
        {"OrgProposed": "proposed", "OrgAdmitted": "active"}[e.name]
        for e in expected.named(evs, "OrgProposed", "OrgAdmitted")
        if e.args["orgId"] == hx(bank_b)
    ]
    assert orgs.org_history(conn, bytes(32)) == []


def test_nodes_datasets_and_versions(conn: Connection, evs: list[Event], history: History) -> None:
    c = history.consortium
    nodes = orgs.list_nodes(conn, org_id=None, limit=MAX_LIMIT, offset=0).items
    registered = expected.named(evs, "NodeRegistered")
    assert [(n["node"], n["org"], n["endpoint"]) for n in nodes] == [
        (e.args["node"], e.args["orgId"], e.args["endpoint"]) for e in registered
    ]
    assert {n["orgName"] for n in nodes} == set(c.orgs)
    mine = orgs.list_nodes(conn, org_id=c.orgs["bank-b"].org_id, limit=10, offset=0).items
    assert [n["node"] for n in mine] == [c.orgs["bank-b"].node.address.lower()]
    history_rows = orgs.node_history(conn, bytes.fromhex(mine[0]["node"][2:]))
    assert [(h["change"], h["blockNumber"]) for h in history_rows] == [
        ("registered", e.block) for e in registered if e.args["node"] == mine[0]["node"]
    ]
    listed = datasets.list_datasets(conn, owner_org=None, limit=MAX_LIMIT, offset=0).items
    assert [(d["dataset"], d["ownerOrg"]) for d in listed] == [
        (e.args["datasetId"], e.args["ownerOrg"]) for e in expected.named(evs, "DatasetRegistered")
    ]
    ds = history.datasets["bank-b"]
    versions = datasets.dataset_versions(conn, ds.dataset_id)
    registry = c.orgs["bank-a"].clients.datasets
    assert [v["version"] for v in versions] == list(
        range(1, registry.latest_version(ds.dataset_id) + 1)
    )
    assert versions[0]["merkleRoot"] == hx(registry.version_info(ds.dataset_id, 1).merkle_root)
    owned = datasets.list_datasets(conn, owner_org=c.orgs["regulator"].org_id, limit=5, offset=0)
    assert [d["dataset"] for d in owned.items] == [hx(history.datasets["regulator"].dataset_id)]


def test_grants_with_uses_status_and_activity(
    conn: Connection, evs: list[Event], history: History
) -> None:
    authorizations = history.consortium.orgs["bank-a"].clients.authorizations
    everything = grants.list_grants(
        conn,
        dataset_id=None,
        grantee_org=None,
        grantor_org=None,
        purpose=None,
        active_at=None,
        limit=MAX_LIMIT,
        offset=0,
    ).items
    assert [g["grant"] for g in everything] == [
        e.args["grantId"] for e in expected.named(evs, "GrantCreated")
    ]
    for g in everything:
        on_chain = authorizations.info(bytes.fromhex(g["grant"][2:]))
        assert (g["uses"], g["maxUses"]) == (on_chain.used, on_chain.max_uses)
        assert (g["status"] == "revoked") == on_chain.revoked
        assert (g["status"] == "exhausted") == (on_chain.used >= on_chain.max_uses)
    by_label = {label: hx(grant) for label, grant in history.grants.items()}
    statuses = {g["grant"]: g["status"] for g in everything}
    assert statuses == {
        by_label["bank-b"]: "active",
        by_label["regulator"]: "exhausted",
        by_label["revoked"]: "revoked",
        by_label["metered"]: "active",
    }

    def active_at(t: int, **kw: Any) -> list[str]:
        args = {"dataset_id": None, "grantee_org": None, "grantor_org": None, "purpose": None}
        page = grants.list_grants(conn, **{**args, **kw}, active_at=t, limit=100, offset=0)
        return [g["grant"] for g in page.items]

    created = {e.args["grantId"]: e for e in expected.named(evs, "GrantCreated")}
    used = {e.args["grantId"]: e for e in expected.named(evs, "GrantUsed")}
    revoked = {e.args["grantId"]: e for e in expected.named(evs, "GrantRevoked")}
    last = evs[-1].time
    # Before anything was granted: none; now: those neither revoked nor used up.
    assert active_at(created[by_label["bank-b"]].time - 1) == []
    assert active_at(last) == [by_label["bank-b"], by_label["metered"]]
    # A settlement of 4 uses counts as 4, not as one event.
    assert {g["grant"]: g["uses"] for g in everything}[by_label["metered"]] == 4
    # The regulator's grant was usable up to (and at) the block of its only use.
    use_time = used[by_label["regulator"]].time
    assert by_label["regulator"] in active_at(use_time)
    assert by_label["regulator"] not in active_at(use_time + 1)
    assert by_label["revoked"] not in active_at(revoked[by_label["revoked"]].time)
    # Past notAfter, nothing is active.
    not_after = int(created[by_label["bank-b"]].args["notAfter"])
    assert by_label["bank-b"] in active_at(not_after)
    assert by_label["bank-b"] not in active_at(not_after + 1)
    bank_b = history.consortium.orgs["bank-b"]
    assert active_at(last, grantor_org=bank_b.org_id) == [by_label["bank-b"], by_label["metered"]]
    assert active_at(last, grantee_org=bank_b.org_id) == []
    ds = history.datasets["regulator"].dataset_id
    narrowed = grants.list_grants(
        conn,
        dataset_id=ds,
        grantee_org=None,
        grantor_org=None,
        purpose=None,
        active_at=None,
        limit=5,
        offset=0,
    )
    assert [g["grant"] for g in narrowed.items] == [by_label["regulator"]]


def test_task_search_matches_the_events_and_the_chain(
    conn: Connection, evs: list[Event], history: History
) -> None:
    def search(visible_to: bytes | None = None, **kw: Any) -> list[str]:
        page = tasks.search_tasks(
            conn, tasks.TaskFilter(**kw), visible_to=visible_to, limit=MAX_LIMIT, offset=0
        )
        return [t["task"] for t in page.items]

    newest_first = expected.task_ids_newest_first(evs)
    items = tasks.search_tasks(
        conn, tasks.TaskFilter(), visible_to=None, limit=MAX_LIMIT, offset=0
    ).items
    assert [t["task"] for t in items] == newest_first
    for t in items:
        assert t["status"] == expected.chain_status(history, t["task"])
        assert t["algorithmName"] == "psi" and t["creatorOrgName"] == "bank-a"
    c = history.consortium
    for name, org in c.orgs.items():
        want = [t for t in newest_first if hx(org.org_id) in expected.task_orgs(evs, t)]
        assert search(org=org.org_id) == want, name
        assert search(visible_to=org.org_id) == want, name
    assert search(status="completed") == [hx(history.tasks["done"])]
    assert search(status="failed") == [hx(history.tasks["failed"])]
    assert search(status="running") == []
    ds = history.datasets["regulator"].dataset_id
    assert search(dataset=ds) == [hx(history.tasks["failed"])]
    assert search(algorithm=bytes(32)) == []
    assert search(kind=5) == newest_first and search(kind=0) == []
    done = history.tasks["done"]
    prefix = done.hex()[:7]  # odd length: a half byte
    assert hx(done) in search(text=prefix) and hx(done) in search(text="0x" + prefix.upper())
    assert all(t.startswith("0x" + prefix) for t in search(text=prefix))
    assert search(text="PS") == newest_first  # the algorithm name, any case
    assert search(text="50%") == [] and search(text="_") == []  # LIKE wildcards are literal
    created = {e.args["taskId"]: e.time for e in expected.named(evs, "TaskCreated")}
    t0 = created[hx(history.tasks["waiting"])]
    assert search(since=t0) == [t for t in newest_first if created[t] >= t0]
    assert search(until=t0) == [t for t in newest_first if created[t] < t0]
    bank_b = c.orgs["bank-b"].org_id
    assert search(visible_to=bank_b, status="failed") == []


def test_paging_neither_loses_nor_repeats(conn: Connection, evs: list[Event]) -> None:
    full = tasks.search_tasks(conn, tasks.TaskFilter(), visible_to=None, limit=1000, offset=0)
    for limit in (1, 2, 3):
        paged = all_pages(
            lambda limit, offset: tasks.search_tasks(
                conn, tasks.TaskFilter(), visible_to=None, limit=limit, offset=offset
            ),
            limit,
        )
        assert paged == full.items
        nodes = all_pages(
            lambda limit, offset: orgs.list_nodes(conn, org_id=None, limit=limit, offset=offset),
            limit,
        )
        assert len({n["node"] for n in nodes}) == len(expected.named(evs, "NodeRegistered"))
    past_end = tasks.search_tasks(conn, tasks.TaskFilter(), visible_to=None, limit=2, offset=99)
    assert past_end.items == [] and past_end.next_offset is None and past_end.total == full.total
    with pytest.raises(ValueError, match="limit"):
        tasks.search_tasks(conn, tasks.TaskFilter(), visible_to=None, limit=0, offset=0)


def test_summary_and_trail(conn: Connection, evs: list[Event], history: History) -> None:
    c = history.consortium
    for label, task_id in history.tasks.items():
        trail = tasks.task_trail(conn, task_id)
        assert [(s["blockNumber"], s["logIndex"], s["step"], s["txHash"]) for s in trail] == (
            expected.trail(evs, hx(task_id))
        ), label
        summary = tasks.task_summary(conn, task_id)
        assert summary is not None
        assert summary["status"] == expected.chain_status(history, hx(task_id))
        on_chain = c.orgs["bank-a"].clients.tasks.participants(task_id)
        assert [p["node"] for p in summary["participants"]] == [p.node.lower() for p in on_chain]
        assert {p["org"] for p in summary["participants"]} | {summary["creatorOrg"]} == (
            {hx(o) for o in tasks.task_orgs(conn, task_id)}
        )
        assert {hx(o) for o in tasks.task_orgs(conn, task_id)} == expected.task_orgs(
            evs, hx(task_id)
        )
    done = tasks.task_summary(conn, history.tasks["done"])
    assert done is not None and done["endedBlock"] is not None
    assert done["resultDigest"] == done["results"][0]["resultDigest"]
    assert [r["orgName"] for r in done["results"]] == ["bank-a", "bank-b"]
    failed = tasks.task_summary(conn, history.tasks["failed"])
    assert failed is not None and failed["failure"] is not None
    assert failed["failure"]["reason"] == "GROUP_TOO_SMALL"
    assert failed["failure"]["reporterOrgName"] == "regulator"
    waiting = tasks.task_summary(conn, history.tasks["waiting"])
    assert waiting is not None and waiting["endedBlock"] is None and waiting["results"] == []
    assert tasks.task_summary(conn, bytes(32)) is None and tasks.task_trail(conn, bytes(32)) == []
    assert tasks.task_orgs(conn, bytes(32)) == set()


def test_usage_refusals_and_checkpoints(
    conn: Connection, evs: list[Event], history: History
) -> None:
    counts = expected.usage_counts(evs)
    for period in usage.PERIODS:
        rows = usage.usage(conn, period=period, since=None, until=None, org_id=None)
        totals: dict[str, list[int]] = {}
        for r in rows:
            assert r["periodStart"] == usage.period_start(period, r["periodStart"])
            t = totals.setdefault(r["org"], [0, 0, 0])
            t[0] += r["tasksCreated"]
            t[1] += r["tasksJoined"]
            t[2] += r["grantUses"]
        assert {o: tuple(t) for o, t in totals.items()} == counts, period
    bank_b = history.consortium.orgs["bank-b"].org_id
    mine = usage.usage(conn, period="month", since=None, until=None, org_id=bank_b)
    assert {r["org"] for r in mine} == {hx(bank_b)}
    later = evs[-1].time + 1
    assert usage.usage(conn, period="day", since=later, until=None, org_id=None) == []
    failures = expected.named(evs, "TaskFailed")
    assert (
        usage.refusals(conn, since=None, until=None, org_id=None)
        == [{"step": "TaskFailed", "reasonCode": 105, "reason": "GROUP_TOO_SMALL", "count": 1}]
        == [
            {
                "step": e.name,
                "reasonCode": e.args["reasonCode"],
                "reason": "GROUP_TOO_SMALL",
                "count": 1,
            }
            for e in failures
        ]
    )
    assert usage.refusals(conn, since=None, until=None, org_id=bank_b) == []
    checkpoints = anchors.list_checkpoints(conn, log_id=None, owner_org=None, limit=100, offset=0)
    assert [(p["treeSize"], p["rootHash"], p["txHash"]) for p in checkpoints.items] == [
        (int(e.args["treeSize"]), e.args["rootHash"], e.tx)
        for e in expected.named(evs, "Checkpointed")
    ]
    assert {p["ownerOrgName"] for p in checkpoints.items} == {"bank-b"}
    none = anchors.list_checkpoints(
        conn, log_id=None, owner_org=history.consortium.orgs["bank-a"].org_id, limit=5, offset=0
    )
    assert none.total == 0


def test_period_starts_are_utc_calendar_boundaries() -> None:
    t = 1_700_000_000  # 2023-11-14 22:13:20 UTC, a Tuesday
    assert usage.period_start("day", t) == 1_699_920_000  # 2023-11-14 00:00
    assert usage.period_start("week", t) == 1_699_833_600  # Monday 2023-11-13
    assert usage.period_start("month", t) == 1_698_796_800  # 2023-11-01
    assert usage.period_start("week", 1_699_833_600) == 1_699_833_600
