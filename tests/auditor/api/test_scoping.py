"""Member scoping, tried the way a member bank would: bank-b (signed in with its admin
key, or its node key) looks for tasks it had no part in — the failed task between
bank-a and the regulator and bank-a's solo task — by id, through search, through the
trail, and through the CSV export. Each answers exactly as for a task that does not
exist; its own tasks remain visible, and regulators see everything."""

from __future__ import annotations

import pytest

from tests.auditor.api.conftest import Api
from tests.auditor.api.scenario import History

pytestmark = pytest.mark.anvil


def hx(value: bytes) -> str:
    return "0x" + value.hex()


@pytest.fixture(scope="module")
def bank_b_node(api: Api, history: History) -> str:
    """bank-b signed in with its node's key rather than its admin's."""
    api.tokens["bank-b-node"] = api.sign_in(history.consortium.orgs["bank-b"].node)
    return "bank-b-node"


def not_found_like_a_missing_task(api: Api, path: str, task: str, as_: str) -> None:
    """``path`` answers for ``task`` exactly what it answers for a task id nobody used."""
    missing = "0x" + "ab" * 32
    hidden = api.get(path.format(task), as_=as_)
    absent = api.get(path.format(missing), as_=as_)
    assert hidden.status_code == absent.status_code == 404, hidden.text
    assert hidden.json() == {
        "error": {
            **absent.json()["error"],
            "message": absent.json()["error"]["message"].replace(missing, task),
        }
    }
    assert set(hidden.headers) - {"content-length"} == set(absent.headers) - {"content-length"}


@pytest.mark.parametrize("as_", ["bank-b", "bank-b-node"])
def test_another_banks_task_is_invisible_by_id_trail_and_csv(
    api: Api, history: History, bank_b_node: str, as_: str
) -> None:
    for label in ("failed", "solo"):
        task = hx(history.tasks[label])
        for path in ("/v1/tasks/{}", "/v1/tasks/{}/trail", "/v1/tasks/{}/trail?format=csv"):
            not_found_like_a_missing_task(api, path, task, as_)
    for label in ("done", "waiting"):
        task = hx(history.tasks[label])
        assert api.get(f"/v1/tasks/{task}", as_=as_).status_code == 200
        trail = api.get(f"/v1/tasks/{task}/trail", as_=as_, format="csv")
        assert trail.status_code == 200 and task not in trail.text  # rows, not the id
        assert "TaskCreated" in trail.text


def test_search_and_export_never_show_it(api: Api, history: History) -> None:
    hidden = {hx(history.tasks["failed"]), hx(history.tasks["solo"])}
    mine = {hx(history.tasks["done"]), hx(history.tasks["waiting"])}
    listed = {t["task"] for t in api.get("/v1/tasks", as_="bank-b").json()["items"]}
    assert listed == mine
    exported = api.get("/v1/tasks", as_="bank-b", format="csv", limit=1000).text
    assert not any(t in exported for t in hidden) and all(t in exported for t in mine)
    for task in hidden:
        for prefix in (task[:10], task, task[2:12].upper()):
            found = api.get("/v1/tasks", as_="bank-b", q=prefix).json()
            assert found["items"] == [] and found["page"]["total"] == 0, prefix
    ways = [
        {"org": "regulator"},
        {"org": "bank-a"},
        {"status": "failed"},
        {"dataset": "regulator/regulator-data"},
        {"dataset": "bank-a/bank-a-data"},
    ]
    for params in ways:
        found = {t["task"] for t in api.get("/v1/tasks", as_="bank-b", **params).json()["items"]}
        assert not found & hidden, params
    # bank-a, the creator, and the regulator see all four.
    for org in ("bank-a", "regulator"):
        assert {t["task"] for t in api.get("/v1/tasks", as_=org).json()["items"]} == hidden | mine


def test_usage_and_refusals_are_a_members_own(api: Api, history: History) -> None:
    usage = api.get("/v1/usage", as_="bank-b").json()["items"]
    assert {u["orgName"] for u in usage} == {"bank-b"}
    assert api.get("/v1/usage", as_="bank-b", org="bank-b").json()["items"] == usage
    refused = api.get("/v1/usage", as_="bank-b", org="bank-a")
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "org"
    assert api.get("/v1/refusals", as_="bank-b", org="regulator").status_code == 403
    # The only failure is in a task bank-b had no part in.
    assert api.get("/v1/refusals", as_="bank-b").json()["items"] == []
    assert api.get("/v1/refusals", as_="regulator").json()["page"]["total"] == 1
    assert {u["orgName"] for u in api.get("/v1/usage", as_="regulator").json()["items"]} == {
        "bank-a",
        "bank-b",
        "regulator",
    }
