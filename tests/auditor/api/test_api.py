"""The JSON/CSV endpoints over HTTP (FastAPI TestClient, real sign-in, SQLite index):
each answer equals ``auditor.query``'s (itself checked against the events and the
chain in ``test_queries``), CSV equals JSON, pages join up, every answer says how
complete it is, every error has the one shape, and every regulator request is logged."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from auditor.api.reading import to_csv
from auditor.index.store import IndexStore
from auditor.query import tasks
from auditor.query.paging import MAX_LIMIT
from tests.auditor.api.conftest import Api, make_api
from tests.auditor.api.conftest import make_app as make_api_app
from tests.auditor.api.scenario import History
from tests.node.conftest import database_url

pytestmark = pytest.mark.anvil

#: Every list endpoint, with a filter that narrows it where one exists.
LISTS = [
    "/v1/orgs",
    "/v1/orgs/bank-b/history",
    "/v1/nodes",
    "/v1/datasets",
    "/v1/datasets/bank-b/bank-b-data/versions",
    "/v1/grants",
    "/v1/tasks",
    "/v1/usage",
    "/v1/refusals",
    "/v1/checkpoints",
]


def hx(value: bytes) -> str:
    return "0x" + value.hex()


def error(response: Any, status: int, code: str, field: str) -> str:
    """The error's message, once status, shape, code and field are checked."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and {"code", "field", "message"} <= set(body["error"])
    assert (body["error"]["code"], body["error"]["field"]) == (code, field), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    return str(body["error"]["message"])


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


def as_cell(value: Any) -> str:
    return "" if value is None else str(value)


@pytest.mark.parametrize("path", LISTS)
def test_every_list_answers_json_and_the_same_csv(api: Api, path: str) -> None:
    answer = api.get(path)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"items", "page", "index"}
    assert body["items"], path  # the scenario gives every list something
    block = body["index"]["completeUpToBlock"]
    assert answer.headers["x-provnet-complete-up-to-block"] == str(block)
    assert body["index"]["lag"] == 0 and body["index"]["reorgsSeen"] == 0
    exported = api.get(path, format="csv")
    assert exported.status_code == 200
    assert exported.headers["x-provnet-complete-up-to-block"] == str(block)
    rows = csv_rows(exported)
    columns = next(csv.reader(io.StringIO(exported.text)))
    assert columns == list(body["items"][0])  # same columns, same order
    assert rows == [{k: as_cell(v) for k, v in item.items()} for item in body["items"]]


def test_answers_equal_the_query_functions_and_pages_join_up(api: Api, history: History) -> None:
    with api.ctx.store.engine.connect() as conn:
        want = tasks.search_tasks(
            conn, tasks.TaskFilter(), visible_to=None, limit=MAX_LIMIT, offset=0
        ).items
        trail = tasks.task_trail(conn, history.tasks["done"])
    got: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get("/v1/tasks", limit=3, offset=offset).json()
        assert page["page"]["limit"] == 3 and page["page"]["total"] == len(want)
        got += page["items"]
        offset = page["page"]["nextOffset"]
    assert got == want
    done = hx(history.tasks["done"])
    assert api.get(f"/v1/tasks/{done}/trail").json()["items"] == trail
    summary = api.get(f"/v1/tasks/{done}").json()
    assert summary["task"]["task"] == done and summary["task"]["status"] == "completed"
    assert summary["index"]["completeUpToBlock"] >= trail[-1]["blockNumber"]


def test_filters_by_name_and_by_id_agree(api: Api, history: History) -> None:
    c = history.consortium
    bank_b = c.orgs["bank-b"].org_id
    by_name = api.get("/v1/tasks", org="bank-b").json()["items"]
    by_id = api.get("/v1/tasks", org=hx(bank_b)).json()["items"]
    assert by_name == by_id and {t["task"] for t in by_name} == {
        hx(history.tasks["done"]),
        hx(history.tasks["waiting"]),
    }
    ds = history.datasets["regulator"].dataset_id
    assert (
        api.get("/v1/tasks", dataset="regulator/regulator-data").json()["items"]
        == api.get("/v1/tasks", dataset=hx(ds)).json()["items"]
    )
    assert [
        t["status"] for t in api.get("/v1/tasks", status="failed", kind="other").json()["items"]
    ] == ["failed"]
    assert api.get("/v1/tasks", kind="psi").json()["page"]["total"] == 0
    grants = api.get("/v1/grants", purpose="aml-screening", grantor="bank-b").json()["items"]
    assert {g["grant"] for g in grants} == {
        hx(history.grants["bank-b"]),
        hx(history.grants["revoked"]),
        hx(history.grants["metered"]),
    }
    assert api.get("/v1/orgs", role="regulator").json()["items"][0]["name"] == "regulator"
    assert api.get("/v1/orgs", role="8").json()["items"][0]["name"] == "regulator"
    assert api.get("/v1/nodes", org="regulator").json()["page"]["total"] == 1
    weekly = api.get("/v1/usage", period="week", org="bank-b").json()["items"]
    assert {u["orgName"] for u in weekly} == {"bank-b"}


def test_status_needs_no_sign_in_and_the_rest_does(api: Api, history: History) -> None:
    status = api.client.get("/v1/status")
    assert status.status_code == 200
    body = status.json()
    assert body["chainId"] == history.chain.chain_id and body["version"] == "test"
    assert body["consortium"] == history.consortium.deployment.address("Consortium")
    assert status.headers["x-provnet-complete-up-to-block"] == str(
        body["index"]["completeUpToBlock"]
    )
    for path in LISTS:
        refused = api.client.get(path)
        error(refused, 401, "UNAUTHORIZED", "Authorization")
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "x-provnet-complete-up-to-block" in refused.headers
    bad = api.client.get("/v1/tasks", headers={"Authorization": "Bearer nope"})
    error(bad, 401, "UNAUTHORIZED", "Authorization")


def test_bad_input_is_a_4xx_in_the_shape_naming_the_field(api: Api) -> None:
    error(api.get("/v1/tasks", limit=0), 422, "INVALID_INPUT", "limit")
    error(api.get("/v1/tasks", limit=MAX_LIMIT + 1), 422, "INVALID_INPUT", "limit")
    error(api.get("/v1/tasks", offset=-1), 422, "INVALID_INPUT", "offset")
    error(api.get("/v1/tasks", offset=2**70), 422, "INVALID_INPUT", "offset")
    error(api.get("/v1/tasks", since="yesterday"), 422, "INVALID_INPUT", "since")
    error(api.get("/v1/tasks", status="won"), 422, "INVALID_INPUT", "status")
    error(api.get("/v1/tasks", kind="quantum"), 422, "INVALID_INPUT", "kind")
    error(api.get("/v1/tasks", algorithm="0x12"), 422, "INVALID_INPUT", "algorithm")
    error(api.get("/v1/tasks", format="xml"), 422, "INVALID_INPUT", "format")
    message = error(api.get("/v1/tasks", org="bank-z"), 422, "INVALID_INPUT", "org")
    assert "bank-z" in message
    error(api.get("/v1/tasks", dataset="no-slash"), 422, "INVALID_INPUT", "dataset")
    error(api.get("/v1/grants", activeAt=-5), 422, "INVALID_INPUT", "activeAt")
    error(api.get("/v1/orgs", role="banker"), 422, "INVALID_INPUT", "role")
    error(api.get("/v1/usage", period="year"), 422, "INVALID_INPUT", "period")
    error(api.get("/v1/tasks/xyz"), 422, "INVALID_INPUT", "taskId")
    error(api.get("/v1/nodes/0x1234/history"), 422, "INVALID_INPUT", "node")
    error(api.get(f"/v1/tasks/0x{'ab' * 32}"), 404, "NOT_FOUND", "taskId")
    error(api.get(f"/v1/tasks/0x{'ab' * 32}/trail"), 404, "NOT_FOUND", "taskId")
    error(api.get(f"/v1/orgs/0x{'ab' * 32}/history"), 404, "NOT_FOUND", "org")
    error(api.get(f"/v1/nodes/0x{'ab' * 20}/history"), 404, "NOT_FOUND", "node")
    error(api.get("/v1/nope"), 404, "NOT_FOUND", "path")
    error(
        api.client.delete("/v1/tasks", headers=api.headers("regulator")),
        405,
        "METHOD_NOT_ALLOWED",
        "method",
    )
    big = api.client.post(
        "/v1/auth/challenge",
        content=b"{}",
        headers={"Content-Length": str(10**9), "Content-Type": "application/json"},
    )
    error(big, 413, "PAYLOAD_TOO_LARGE", "body")
    assert "x-provnet-complete-up-to-block" in big.headers


def test_every_regulator_request_is_logged_and_no_member_request(
    api: Api, history: History
) -> None:
    regulator = history.consortium.orgs["regulator"].admin.address
    before = api.log.size()
    api.get("/v1/tasks", q="psi", limit=2)
    api.get("/v1/tasks", org="bank-a")
    api.get("/v1/orgs", format="csv")
    api.get("/v1/tasks", limit=0)  # refused, but asked: logged
    api.get("/v1/tasks", org="bank-b")
    api.get("/v1/status")  # signed out: nothing to log
    entries = api.log.entries(before, 100)
    assert [(e["address"], e["method"], e["target"]) for e in entries] == [
        (regulator, "GET", "/v1/tasks?q=psi&limit=2"),
        (regulator, "GET", "/v1/tasks?org=bank-a"),
        (regulator, "GET", "/v1/orgs?format=csv"),
        (regulator, "GET", "/v1/tasks?limit=0"),
        (regulator, "GET", "/v1/tasks?org=bank-b"),
    ]
    member = api.log.size()
    assert api.get("/v1/tasks", org="bank-a").status_code == 200
    assert api.get("/v1/tasks", as_="bank-b").status_code == 200
    assert api.log.size() == member + 1  # only the regulator's of the two
    assert entries[0]["org"] == hx(history.consortium.orgs["regulator"].org_id)


def test_the_document_lists_every_route_with_the_error_model(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in ["/v1/tasks", "/v1/tasks/{taskId}", "/v1/tasks/{taskId}/trail", "/v1/usage"]:
        operation = doc["paths"][path]["get"]
        assert {"401", "422", "500"} <= set(operation["responses"]), path
        assert operation["security"] == [{"HTTPBearer": []}]
        error_schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert error_schema == {"$ref": "#/components/schemas/ErrorBody"}
    assert "text/csv" in doc["paths"]["/v1/tasks"]["get"]["responses"]["200"]["content"]
    assert "security" not in doc["paths"]["/v1/status"]["get"]


def test_a_streamed_body_past_the_limit_is_cut_off_with_413(api: Api) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65_536  # 2.5 MiB without a Content-Length

    refused = api.client.post(
        "/v1/auth/challenge", content=chunks(), headers={"Content-Type": "application/json"}
    )
    error(refused, 413, "PAYLOAD_TOO_LARGE", "body")


def test_a_bug_answers_500_in_the_shape_without_a_traceback(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from auditor.query import orgs

    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError(f"secret {__file__}")

    monkeypatch.setattr(orgs, "list_orgs", broken)
    with caplog.at_level("ERROR", logger="auditor.api.errors"):
        answer = api.get("/v1/orgs")
    error(answer, 500, "INTERNAL", "server")
    assert answer.headers["x-provnet-complete-up-to-block"] == str(api.ctx.store.state().cursor)
    assert "secret" not in answer.text and __file__ not in answer.text
    assert any("GET /v1/orgs" in r.getMessage() and r.exc_info for r in caplog.records)


def test_an_index_not_yet_written_says_so(tmp_path: Path, history: History) -> None:
    """Before the indexer's first page: status answers, with no index block and -1."""
    store = IndexStore(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        app = make_api_app(history, store)
        answer = TestClient(app).get("/v1/status")
        assert answer.status_code == 200 and answer.json()["index"] is None
        assert answer.headers["x-provnet-complete-up-to-block"] == "-1"
        missing = TestClient(app).get("/v1/nope")
        assert missing.headers["x-provnet-complete-up-to-block"] == "-1"
    finally:
        store.close()


def test_postgresql_answers_what_sqlite_answers(api: Api, history: History, tmp_path: Path) -> None:
    """The same chain indexed into PostgreSQL (read in REPEATABLE READ snapshots) gives
    the same answers, byte for byte, apart from when each index was last written."""
    for url in database_url("postgresql", tmp_path):
        store = history.index_into(url, page_size=100)
        try:
            pg = make_api(history, store)
            done = hx(history.tasks["done"])
            for path in [*LISTS, f"/v1/tasks/{done}/trail", f"/v1/tasks/{done}"]:
                for fmt in ("json", "csv"):
                    a, b = api.get(path, format=fmt), pg.get(path, format=fmt)
                    if path == f"/v1/tasks/{done}" and fmt == "csv":
                        continue  # not a list: no CSV form
                    assert a.status_code == b.status_code == 200, (path, b.text)
                    if fmt == "csv":
                        assert a.text == b.text, path
                    else:
                        body_a, body_b = a.json(), b.json()
                        body_a["index"].pop("updatedAt"), body_b["index"].pop("updatedAt")
                        assert body_a == body_b, path
        finally:
            store.close()


def test_csv_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    """An organisation may name itself anything on chain; its name must not become a
    formula in the regulator's spreadsheet."""
    items = [
        {"name": '=HYPERLINK("http://x")', "n": -3, "ok": True, "none": None},
        {"name": "@SUM(A1)", "n": 0, "ok": False, "none": [1, "a"]},
        {"name": "bank-a", "n": 2**70, "ok": None, "none": {"k": 1}},
    ]
    rows = list(csv.reader(io.StringIO(to_csv(items, ["name", "n", "ok", "none"]))))
    assert rows == [
        ["name", "n", "ok", "none"],
        ['\'=HYPERLINK("http://x")', "-3", "true", ""],
        ["'@SUM(A1)", "0", "false", '[1,"a"]'],
        ["bank-a", str(2**70), "", '{"k":1}'],
    ]
