"""The pages over a real index, through FastAPI's TestClient: every page renders what the
``auditor.query`` functions answer, members see only their own tasks, names are inert.

Expected values come from the query functions (and, for the verification, from an
independent run of the verifier), read from the same database; the page is parsed as a
reader sees it (table cells), so a page that drops, reorders or mislabels a value fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from fastapi.testclient import TestClient

from auditor.api.app import create_app
from auditor.auth.client import sign_in
from auditor.auth.sessions import SessionStore
from auditor.index.store import IndexStore
from auditor.pages.render import fmt_date, fmt_time, verdict
from auditor.query import datasets, orgs, tasks, usage
from auditor.query.tasks import TaskFilter
from auditor.querylog.log import QueryLog
from tests.auditor.pages.conftest import SCRIPT_NAME, Site
from tests.auditor.pages.html import Cell, tables, text

pytestmark = pytest.mark.anvil
BASE = "http://testserver"


@pytest.fixture(scope="module")
def app(site: Site) -> FastAPI:
    return site.app(BASE)


def sessions(app: FastAPI) -> SessionStore:
    store = app.state.ctx.sessions
    assert isinstance(store, SessionStore)
    return store


def signed_in(app: FastAPI, account: LocalAccount) -> TestClient:
    """A browser-like client signed in through the pages' form with a real token."""
    client = TestClient(app, follow_redirects=False)
    token = sign_in(BASE, account, client=client)
    answer = client.post("/signin", data={"token": token, "next": "/tasks"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/tasks"
    return client


@pytest.fixture(scope="module")
def regulator(site: Site, app: FastAPI) -> Iterator[TestClient]:
    client = signed_in(app, site.consortium.orgs["regulator"].admin)
    yield client
    client.close()


@pytest.fixture(scope="module")
def bank_b(site: Site, app: FastAPI) -> Iterator[TestClient]:
    client = signed_in(app, site.consortium.orgs["bank-b"].admin)
    yield client
    client.close()


def hexid(value: bytes) -> str:
    return "0x" + value.hex()


def get(client: TestClient, path: str, status: int = 200) -> str:
    answer = client.get(path)
    assert answer.status_code == status, (path, answer.status_code, answer.text[:500])
    if status == 200:
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src" not in answer.headers["content-security-policy"]
    return answer.text


def full(cell: Cell) -> str:
    """The full value of a shortened id (its title), else the cell's text."""
    return cell.titles[0] if cell.titles else cell.text


# --- sign-in --------------------------------------------------------------------------


def test_signin_page_says_how_to_get_a_token(app: FastAPI) -> None:
    client = TestClient(app, follow_redirects=False)
    page = get(client, "/signin")
    assert f"provnet auditor token --url {BASE} --key KEYSTORE.json" in text(page)
    assert 'name="token"' in page
    assert "<script" not in page  # no JavaScript at all
    answer = client.get("/tasks?status=completed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=" + quote("/tasks?status=completed", "")


def test_signin_sets_a_strict_httponly_cookie_and_signout_revokes_it(
    site: Site, app: FastAPI
) -> None:
    client = TestClient(app, follow_redirects=False)
    bad = client.post("/signin", data={"token": "not-a-token"})
    assert bad.status_code == 401
    assert "unknown or expired" in text(bad.text)
    account = site.consortium.orgs["bank-a"].admin
    token = sign_in(BASE, account, client=client)
    cross = client.post(
        "/signin", data={"token": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    answer = client.post("/signin", data={"token": token, "next": "//evil.example/x"})
    assert answer.status_code == 303 and answer.headers["location"] == "/tasks"
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith("provnet_session=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    page = get(client, "/tasks")
    assert "bank-a" in text(page) and "Sign out" in page
    assert sessions(app).principal(token) is not None
    assert client.post("/signout").status_code == 303
    assert sessions(app).principal(token) is None  # revoked on the server
    assert client.get("/tasks").status_code == 303


# --- every page: status line, who is signed in ---------------------------------------


@pytest.mark.parametrize("path", ["/tasks", "/usage", "/refusals", "/orgs", "/datasets"])
def test_every_page_states_the_index_block_and_who_is_signed_in(
    site: Site, regulator: TestClient, path: str
) -> None:
    page = get(regulator, path)
    status = site.store.status()
    shown = text(page)
    assert f"Complete up to block {status.complete_up_to}" in shown
    assert f"lag {status.lag_blocks} blocks" in shown
    assert f"{status.reorgs_seen} reorgs seen" in shown
    assert "regulator regulator" in shown  # organisation name, then its role
    assert site.consortium.orgs["regulator"].admin.address in page


def test_regulator_page_views_are_in_the_query_log(site: Site, regulator: TestClient) -> None:
    get(regulator, "/orgs?offset=0")
    log = QueryLog(site.store)
    last = log.entries(max(log.size() - 1, 0), 1)
    assert "/orgs?offset=0" in str(last)


# --- tasks ----------------------------------------------------------------------------


def task_rows(page: str) -> list[tuple[str, ...]]:
    return [(full(r[0]), r[1].text, r[2].text, r[3].text, r[7].text) for r in tables(page)["tasks"]]


def expected_tasks(site: Site, f: TaskFilter, visible_to: bytes | None) -> list[tuple[str, ...]]:
    with site.store.engine.connect() as conn:
        page = tasks.search_tasks(conn, f, visible_to=visible_to, limit=50, offset=0)
    return [
        (
            t["task"],
            fmt_time(t["blockTime"]),
            str(t["blockNumber"]),
            t["creatorOrgName"],
            t["status"],
        )
        for t in page.items
    ]


def test_task_search_lists_what_search_tasks_answers(site: Site, regulator: TestClient) -> None:
    everything = task_rows(get(regulator, "/tasks"))
    assert everything == expected_tasks(site, TaskFilter(), None)
    assert {r[0] for r in everything} >= {hexid(site.task.task_id), hexid(site.refused.task_id)}
    done = task_rows(get(regulator, "/tasks?status=completed"))
    assert done == expected_tasks(site, TaskFilter(status="completed"), None)
    assert [r[0] for r in done] == [hexid(site.task.task_id)]
    prefix = site.task.task_id.hex()[:10]
    assert [r[0] for r in task_rows(get(regulator, f"/tasks?q={prefix}"))] == [
        hexid(site.task.task_id)
    ]
    b = site.consortium.orgs["bank-b"].org_id
    assert task_rows(get(regulator, f"/tasks?org={hexid(b)}")) == expected_tasks(
        site, TaskFilter(org=b), None
    )


def test_a_malformed_filter_is_named_not_a_server_error(regulator: TestClient) -> None:
    page = get(regulator, "/tasks?dataset=0x12", 400)
    assert "dataset: expected 0x followed by 64 hex digits" in text(page)
    page = get(regulator, "/tasks?since=30/11/2026", 400)
    assert "since: expected a date as YYYY-MM-DD" in text(page)
    get(regulator, "/tasks/not-a-task", 404)
    get(regulator, "/tasks?offset=-5")  # a hand-edited offset shows the first page


def test_the_task_page_shows_summary_participants_and_timeline(
    site: Site, regulator: TestClient
) -> None:
    task_id = site.task.task_id
    with site.store.engine.connect() as conn:
        summary = tasks.task_summary(conn, task_id)
        trail = tasks.task_trail(conn, task_id)
    assert summary is not None
    page = get(regulator, f"/tasks/{hexid(task_id)}")
    shown = text(page)
    assert hexid(task_id) in shown and "completed" in shown
    assert f"{fmt_time(summary['createdTime'])} · block {summary['createdBlock']}" in shown
    seats = [(r[1].text, full(r[2]), full(r[3]), r[4].text) for r in tables(page)["participants"]]
    assert seats == [
        (p["orgName"], p["node"], p["dataset"], str(p["datasetVersion"]))
        for p in summary["participants"]
    ]
    timeline = [
        (r[0].text, r[1].text, r[2].text, r[3].text, r[4].text, full(r[7]))
        for r in tables(page)["trail"]
    ]
    assert timeline == [
        (
            str(s["blockNumber"]),
            str(s["logIndex"]),
            fmt_time(s["blockTime"]),
            s["step"],
            s["actorOrgName"] or "—",  # TaskStarted: no acting node
            s["txHash"],
        )
        for s in trail
    ]
    for href in (f"/v1/tasks/{hexid(task_id)}", f"/v1/tasks/{hexid(task_id)}/trail?format=csv"):
        assert f'href="{href}"' in page
    csv = regulator.get(f"/v1/tasks/{hexid(task_id)}/trail?format=csv")  # the cookie signs in
    assert csv.status_code == 200 and csv.text.count("\r\n") == len(trail) + 1


def test_running_the_verification_shows_the_verifiers_verdicts(
    site: Site, regulator: TestClient
) -> None:
    task_id = site.task.task_id
    page = get(regulator, f"/tasks/{hexid(task_id)}")
    assert 'id="run-verification"' in page
    answer = regulator.post(f"/tasks/{hexid(task_id)}/verification")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/tasks/{hexid(task_id)}#verification"
    assert site.ctx.verifier is not None
    expected = site.ctx.verifier.verify(task_id)  # an independent run over the same chain
    page = get(regulator, f"/tasks/{hexid(task_id)}")
    shown = [(r[0].text, r[1].text, r[2].text) for r in tables(page)["checks"]]
    assert shown == [(verdict(c.status), c.name, c.detail) for c in expected.checks]
    assert {v for v, _, _ in shown} <= {"PASS", "FAIL", "N/A"}
    assert ("FAIL" in {v for v, _, _ in shown}) == (not expected.verified)
    assert ("NOT VERIFIED" in text(page)) == (not expected.verified)
    # The exports now include the signed report, whose bytes hash to the digest shown.
    report = f"/v1/tasks/{hexid(task_id)}/verification/report"
    assert f'href="{report}"' in page
    assert f'href="/v1/tasks/{hexid(task_id)}/verification/prov"' in page
    envelope = regulator.get(report)
    assert envelope.status_code == 200
    digest = "sha256:" + hashlib.sha256(envelope.content).hexdigest()
    assert digest in text(page)


# --- members --------------------------------------------------------------------------


def test_a_member_sees_only_its_own_tasks(site: Site, bank_b: TestClient) -> None:
    b = site.consortium.orgs["bank-b"].org_id
    rows = task_rows(get(bank_b, "/tasks"))
    assert rows == expected_tasks(site, TaskFilter(), b)
    assert [r[0] for r in rows] == [hexid(site.task.task_id)]
    get(bank_b, f"/tasks/{hexid(site.task.task_id)}")
    hidden = get(bank_b, f"/tasks/{hexid(site.refused.task_id)}", 404)
    assert site.refused.task_id.hex() not in text(hidden).replace(
        f"No task {hexid(site.refused.task_id)} that you may see.", ""
    )
    answer = bank_b.post(f"/tasks/{hexid(site.refused.task_id)}/verification")
    assert answer.status_code == 404
    assert 'id="run-verification"' not in get(bank_b, f"/tasks/{hexid(site.task.task_id)}")


def test_a_member_sees_only_its_own_usage(site: Site, bank_b: TestClient) -> None:
    b = site.consortium.orgs["bank-b"].org_id
    a = site.consortium.orgs["bank-a"].org_id
    page = get(bank_b, f"/usage?org={hexid(a)}")  # asking for another org changes nothing
    with site.store.engine.connect() as conn:
        mine = usage.usage(conn, period="day", since=None, until=None, org_id=b)
    assert [r[1].text for r in tables(page)["usage"]] == [r["orgName"] for r in mine]
    assert {r["orgName"] for r in mine} == {"bank-b"}


# --- usage, refusals, registry lists ---------------------------------------------------


def test_usage_table_and_chart_match_the_query(site: Site, regulator: TestClient) -> None:
    with site.store.engine.connect() as conn:
        rows = usage.usage(conn, period="week", since=None, until=None, org_id=None)
    page = get(regulator, "/usage?period=week&metric=tasksJoined")
    shown = [[c.text for c in r] for r in tables(page)["usage"]]
    assert shown == [
        [
            fmt_date(r["periodStart"]),
            r["orgName"],
            str(r["tasksCreated"]),
            str(r["tasksJoined"]),
            str(r["grantUses"]),
        ]
        for r in rows
    ]
    periods = {r["periodStart"] for r in rows}
    named = {r["org"] for r in rows}
    assert page.count('class="bar"') == len(periods) * len(named)
    for r in rows:
        assert (
            f"<title>{r['orgName']}, {fmt_date(r['periodStart'])}: {r['tasksJoined']}</title>"
            in page
        )


def test_refusals_match_the_query(site: Site, regulator: TestClient) -> None:
    with site.store.engine.connect() as conn:
        rows = usage.refusals(conn, since=None, until=None, org_id=None)
    assert rows, "the fixture's refused task must show"
    page = get(regulator, "/refusals")
    shown = [[c.text for c in r[:4]] for r in tables(page)["refusals"]]
    assert shown == [[r["step"], r["reason"], str(r["reasonCode"]), str(r["count"])] for r in rows]
    assert "GROUP_TOO_SMALL" in text(page)


def test_organisations_and_datasets_match_the_queries(site: Site, regulator: TestClient) -> None:
    with site.store.engine.connect() as conn:
        expected_orgs = orgs.list_orgs(conn, role=None, status=None, limit=50, offset=0).items
        expected_sets = datasets.list_datasets(conn, owner_org=None, limit=50, offset=0).items
    page = get(regulator, "/orgs")
    assert [(r[0].text, full(r[1]), r[2].text, r[3].text) for r in tables(page)["orgs"]] == [
        (o["name"], o["org"], o["roleNames"], o["status"]) for o in expected_orgs
    ]
    page = get(regulator, "/datasets")
    assert [(full(r[0]), r[1].text, r[4].text) for r in tables(page)["datasets"]] == [
        (d["dataset"], d["ownerOrgName"], str(d["latestVersion"])) for d in expected_sets
    ]


def test_an_org_named_script_renders_inert(site: Site, regulator: TestClient) -> None:
    for path in ("/orgs", "/tasks"):
        page = get(regulator, path)
        assert SCRIPT_NAME not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert SCRIPT_NAME in text(page)  # shown to the reader as the literal name


# --- edges ------------------------------------------------------------------------------


def test_a_cross_site_form_post_is_refused(site: Site, regulator: TestClient) -> None:
    task = hexid(site.task.task_id)
    answer = regulator.post(f"/tasks/{task}/verification", headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403
    assert "sent from another site" in text(answer.text)
    assert regulator.post("/signout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 303
    get(regulator, "/tasks")  # a cross-site sign-out did not sign the regulator out


def test_without_a_verifier_the_page_says_so(site: Site) -> None:
    app = create_app(replace(site.ctx, verifier=None))
    client = signed_in(app, site.consortium.orgs["regulator"].admin)
    task = hexid(site.task.task_id)
    assert 'id="run-verification"' not in get(client, f"/tasks/{task}")
    answer = client.post(f"/tasks/{task}/verification")
    assert answer.status_code == 503
    assert "no verifier configured" in text(answer.text)


def test_an_empty_index_still_renders_the_signin_page(site: Site, tmp_path: Path) -> None:
    store = IndexStore(f"sqlite:///{tmp_path / 'empty.db'}")  # never bound to a chain
    ctx = replace(
        site.ctx,
        store=store,
        sessions=SessionStore(store, site.ctx.chain_id, site.ctx.consortium_address, BASE),
    )
    client = TestClient(create_app(ctx), follow_redirects=False)
    page = get(client, "/signin")
    assert "The index has not read any block yet." in text(page)
    answer = client.post("/signin", data={"token": "x" * 43})
    assert answer.status_code == 401
    store.close()


def test_malformed_disclosed_parameters_are_named(site: Site, regulator: TestClient) -> None:
    task = hexid(site.task.task_id)
    for pasted, problem in (("{not json", "not JSON"), ('{"params": 1}', "params")):
        answer = regulator.post(f"/tasks/{task}/verification", data={"params": pasted})
        assert answer.status_code == 422
        assert problem in text(answer.text)


def test_the_apis_verification_page_link_leads_to_the_task(
    site: Site, regulator: TestClient
) -> None:
    task = hexid(site.task.task_id)
    answer = regulator.get(f"/tasks/{task.upper().replace('0X', '0x')}/verification")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/tasks/{task}#verification"
    assert regulator.get("/tasks/zz/verification").headers["location"] == "/tasks"
