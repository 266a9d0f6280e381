"""The operator REST API over the embedded chain: auth, datasets, grants, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger.ids import hex32
from ledger.rows import Column, schema_digest
from node.api import create_app
from node.dataset_store import DatasetStore
from node.service import NodeService
from tests.conftest import Consortium

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(consortium: Consortium, tmp_path: Path) -> tuple[TestClient, NodeService]:
    org = consortium.orgs["bank-a"]
    service = NodeService(org.node_clients, org.org_id, DatasetStore(tmp_path / "datasets"))
    return TestClient(create_app(service, TOKEN, tmp_path / "uploads")), service


def upload(
    client: TestClient, text: str, name: str = "accounts", level: int = 3, **extra: str
) -> object:
    return client.post(
        "/datasets",
        headers=AUTH,
        data={"name": name, "classification": str(level), **extra},
        files={"file": ("d.csv", text.encode(), "text/csv")},
    )


def test_token_is_required(api: tuple[TestClient, NodeService]) -> None:
    client, _ = api
    assert client.get("/datasets").status_code == 401
    assert client.get("/datasets", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/health").json() == {"status": "ok"}


def test_dataset_upload_is_idempotent_and_versioned(
    api: tuple[TestClient, NodeService], consortium: Consortium
) -> None:
    client, service = api
    first = upload(client, "id,amount\nA1,10\nA2,-3\n")
    assert first.status_code == 201, first.text  # type: ignore[attr-defined]
    body = first.json()  # type: ignore[attr-defined]
    assert body["version"] == 1 and body["rowCount"] == 2 and body["classification"] == 3
    head = consortium.chain.head()
    again = upload(client, "id,amount\nA1,10\nA2,-3\n").json()  # type: ignore[attr-defined]
    assert again == body and consortium.chain.head() == head
    second = upload(client, "id,amount\nA1,10\n").json()  # type: ignore[attr-defined]
    assert second["version"] == 2 and second["rowCount"] == 1
    assert second["merkleRoot"] != body["merkleRoot"]
    datasets = service.clients.datasets
    dataset_id = bytes.fromhex(body["datasetId"][2:])
    assert datasets.latest_version(dataset_id) == 2
    assert datasets.version_info(dataset_id, 1).merkle_root.hex() == body["merkleRoot"][2:]
    listed = client.get("/datasets", headers=AUTH).json()
    assert [d["version"] for d in listed] == [1, 2]


def test_identifier_columns_are_committed_and_shown(
    api: tuple[TestClient, NodeService], consortium: Consortium
) -> None:
    client, service = api
    text = "id,amount,phone\nA1,10,+4411\n"
    first = upload(client, text, identifierColumns=" id ,phone,")
    assert first.status_code == 201, first.text  # type: ignore[attr-defined]
    body = first.json()  # type: ignore[attr-defined]
    assert body["columns"] == [
        {"name": "id", "type": "string", "identifier": True},
        {"name": "amount", "type": "integer", "identifier": False},
        {"name": "phone", "type": "string", "identifier": True},
    ]
    marked = [
        Column("id", "string", True),
        Column("amount", "integer"),
        Column("phone", "string", True),
    ]
    assert body["schemaDigest"] == hex32(schema_digest(marked))
    dataset_id = bytes.fromhex(body["datasetId"][2:])
    assert service.clients.datasets.version_info(dataset_id, 1).schema_digest == schema_digest(
        marked
    )
    same = upload(client, text, identifierColumns="phone,id").json()  # type: ignore[attr-defined]
    assert same == body  # the same marks, in any order: nothing new
    unmarked = upload(client, text).json()  # type: ignore[attr-defined]
    assert unmarked["version"] == 2 and unmarked["schemaDigest"] != body["schemaDigest"]
    assert [c["identifier"] for c in unmarked["columns"]] == [False, False, False]
    listed = client.get("/datasets", headers=AUTH).json()
    assert [d["columns"] for d in listed] == [body["columns"], unmarked["columns"]]


def test_an_unknown_identifier_column_is_named_and_changes_nothing(
    api: tuple[TestClient, NodeService], consortium: Consortium
) -> None:
    client, service = api
    head = consortium.chain.head()
    response = upload(client, "id,amount\nA1,10\n", identifierColumns="id,acount")
    assert response.status_code == 422  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["field"] == "identifierColumns" and "'acount'" in error["message"]
    assert consortium.chain.head() == head
    assert service.datasets.versions() == []


def test_the_cli_sends_identifier_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import operator_command
    from scripts.cli import build_parser

    data = tmp_path / "d.csv"
    data.write_text("account,phone\nAC1,+4411\n")
    argv = ["dataset", "register", "--config", str(tmp_path / "node.json"), "--name", "a",
            "--file", str(data), "--classification", "2",
            "--identifier-columns", "account,phone"]  # fmt: skip
    args = build_parser().parse_args(argv)
    sent: dict[str, object] = {}

    def request(config: Path, method: str, path: str, **kwargs: object) -> object:
        sent.update(method=method, path=path, data=kwargs["data"])
        return {"version": 1}

    monkeypatch.setattr(operator_command, "_request", request)
    assert args.handler(args) == 0
    assert sent["path"] == "/datasets"
    assert sent["data"] == {
        "name": "a",
        "classification": "2",
        "identifierColumns": "account,phone",
    }
    assert build_parser().parse_args(argv[:-2]).identifier_columns == ""


def test_the_cli_renders_each_error_as_one_line(
    api: tuple[TestClient, NodeService], consortium: Consortium
) -> None:
    """The answers of the real app, as `provnet` prints them: `<field>: <message>`."""
    import httpx

    from scripts.operator_command import ApiChainError, ApiError, _answer

    client, _ = api
    grant = {
        "datasetId": "0x" + "22" * 32,
        "granteeOrg": hex32(consortium.orgs["bank-b"].org_id),
        "purpose": "p",
        "validForSeconds": 60,
        "maxUses": 0,
    }
    with pytest.raises(ApiError) as bad:
        _answer(client.post("/grants", headers=AUTH, json=grant))
    assert (bad.value.code, str(bad.value)) == (
        "INVALID_INPUT",
        "maxUses: Input should be greater than 0",
    )
    with pytest.raises(ApiError) as refused:
        _answer(client.post("/grants", headers=AUTH, json={**grant, "maxUses": 1}))
    assert refused.value.code == "CONTRACT_REVERT"
    assert str(refused.value).startswith("contract: refused by the chain: ")
    assert "UnknownDataset(datasetId=0x2222" in str(refused.value)
    with pytest.raises(ApiError) as unknown:
        _answer(client.get("/nope", headers=AUTH))
    assert str(unknown.value) == "path: Not Found"
    with pytest.raises(ApiError) as no_token:
        _answer(client.get("/datasets"))
    assert str(no_token.value) == "Authorization: missing or bad bearer token"
    no_gas = {"code": "NO_GAS", "field": "chain", "message": "account 0xA has no gas"}
    with pytest.raises(ApiChainError) as chain:
        _answer(httpx.Response(502, json={"error": no_gas}))
    assert (chain.value.code, str(chain.value)) == ("NO_GAS", "account 0xA has no gas")
    with pytest.raises(ApiError) as proxy:
        _answer(httpx.Response(503, text="<html>upstream down</html>"))
    assert str(proxy.value) == "HTTP 503: <html>upstream down</html>"


@pytest.mark.parametrize(
    ("text", "level", "field"),
    [
        ("id,amount\nA1,10\nA2\n", 3, "d.csv line 3"),
        ("id,id\nA,B\n", 3, "header column 2"),
        ("id\nA\n", 5, "classification"),
        ("id\nA\n", 0, "classification"),
    ],
)
def test_bad_uploads_change_nothing(
    api: tuple[TestClient, NodeService],
    consortium: Consortium,
    text: str,
    level: int,
    field: str,
) -> None:
    client, service = api
    head = consortium.chain.head()
    response = upload(client, text, level=level)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert response.json()["error"]["field"] == field  # type: ignore[attr-defined]
    assert consortium.chain.head() == head
    assert service.datasets.versions() == []


def test_grants_over_rest(api: tuple[TestClient, NodeService], consortium: Consortium) -> None:
    client, _ = api
    dataset = upload(client, "id\nA\n").json()  # type: ignore[attr-defined]
    request = {
        "datasetId": dataset["datasetId"],
        "granteeOrg": hex32(consortium.orgs["bank-b"].org_id),
        "purpose": "fraud-analytics",
        "validForSeconds": 3600,
        "maxUses": 2,
    }
    made = client.post("/grants", headers=AUTH, json=request)
    assert made.status_code == 201, made.text
    grant = made.json()
    assert grant["maxUses"] == 2 and grant["used"] == 0 and grant["revoked"] is False
    assert [g["grantId"] for g in client.get("/grants", headers=AUTH).json()] == [grant["grantId"]]
    revoked = client.delete(f"/grants/{grant['grantId']}", headers=AUTH).json()
    assert revoked["revoked"] is True
    assert client.delete(f"/grants/{grant['grantId']}", headers=AUTH).json() == revoked


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"maxUses": "many"}, "maxUses"),
        ({"maxUses": 0}, "maxUses"),
        ({"datasetId": "0x12"}, "datasetId"),
        ({"surprise": 1}, "surprise"),
        ({"purpose": ""}, "purpose"),
    ],
)
def test_bad_grant_requests_are_named(
    api: tuple[TestClient, NodeService],
    consortium: Consortium,
    change: dict[str, object],
    field: str,
) -> None:
    client, _ = api
    request: dict[str, object] = {
        "datasetId": "0x" + "11" * 32,
        "granteeOrg": hex32(consortium.orgs["bank-b"].org_id),
        "purpose": "p",
        "validForSeconds": 60,
        "maxUses": 1,
    }
    request.update(change)
    head = consortium.chain.head()
    response = client.post("/grants", headers=AUTH, json=request)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert consortium.chain.head() == head


def test_malformed_json_and_contract_refusals(
    api: tuple[TestClient, NodeService], consortium: Consortium
) -> None:
    client, _ = api
    response = client.post(
        "/grants", headers={**AUTH, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert response.status_code == 422
    # A dataset this org does not own: the contract refuses, decoded by name.
    foreign = {
        "datasetId": "0x" + "22" * 32,
        "granteeOrg": hex32(consortium.orgs["bank-b"].org_id),
        "purpose": "p",
        "validForSeconds": 60,
        "maxUses": 1,
    }
    refused = client.post("/grants", headers=AUTH, json=foreign)
    assert refused.status_code == 409
    assert refused.json()["error"]["contractError"] == "UnknownDataset"


def test_oversized_uploads_are_refused_and_change_nothing(
    consortium: Consortium, tmp_path: Path
) -> None:
    org = consortium.orgs["bank-a"]
    service = NodeService(org.node_clients, org.org_id, DatasetStore(tmp_path / "datasets"))
    client = TestClient(create_app(service, TOKEN, tmp_path / "uploads", max_upload_bytes=64))
    head = consortium.chain.head()
    response = upload(client, "id,amount\n" + "A1,10\n" * 20)
    assert response.status_code == 413  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["field"] == "body" and "exceeds the 64-byte limit" in error["message"]
    # Streamed without a Content-Length: cut off as soon as the body passes the limit
    # (what a real server reads is measured in test_entry_limits.py).
    chunks = iter([b"x" * 40, b"y" * 40, b"z" * 40])
    streamed = client.post(
        "/datasets",
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"},
        content=chunks,
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["field"] == "body"
    assert consortium.chain.head() == head
    assert service.datasets.versions() == []
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").iterdir()) == []


def test_json_requests_have_their_own_small_limit(api: tuple[TestClient, NodeService]) -> None:
    client, _ = api
    response = client.post("/grants", headers=AUTH, json={"purpose": "p" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert response.json()["error"]["field"] == "body"


def test_a_bad_token_is_refused_by_name_before_the_body(
    api: tuple[TestClient, NodeService],
) -> None:
    client, _ = api
    response = client.post("/grants", headers={"Authorization": "Bearer nope"}, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["field"] == "Authorization"


# --- tasks: pre-checks, request ids and names over REST (issue 12) ---------------------


def test_tasks_by_name_new_retry_conflict_and_prechecks_over_rest(
    consortium: Consortium, tmp_path: Path
) -> None:
    """As a consumer meets them: 201 for a new task, 200 for an identical retry, 409
    for the request id with other parameters and for a revoked grant (naming the
    provider), 422 for one provider; nothing written by the refused ones."""
    from node.algorithms import stats
    from tests.node.runner_harness import COLUMNS, standard_network

    net = standard_network(consortium, tmp_path, rows_each=30)
    client = TestClient(create_app(net.creator, TOKEN, tmp_path / "uploads"))
    params = {"columns": COLUMNS, "value_column": "balance"}
    short = [
        {"org": "bank-b", "dataset": "bank-b/accounts"},
        {"org": "regulator", "dataset": "regulator/accounts"},
    ]
    body = {
        "requestId": "rest-1",
        "algorithm": stats.NAME,
        "params": params,
        "providers": short,
        "validForSeconds": 600,
    }
    created = client.post("/tasks", headers=AUTH, json=body)
    assert created.status_code == 201, created.text
    head = consortium.chain.head()
    retry = client.post("/tasks", headers=AUTH, json=body)
    assert retry.status_code == 200, retry.text
    assert retry.json()["taskId"] == created.json()["taskId"]
    other = client.post(
        "/tasks", headers=AUTH, json={**body, "params": {**params, "min_group_size": 40}}
    )
    assert other.status_code == 409, other.text
    assert other.json()["error"]["field"] == "requestId"
    status = client.get("/tasks/rest-1", headers=AUTH)
    assert status.status_code == 200, status.text
    shown = status.json()
    assert shown["taskId"] == created.json()["taskId"] and shown["requestId"] == "rest-1"
    assert shown["failure"] is None and shown["refusals"] == []
    assert client.get("/tasks/no-such-request", headers=AUTH).status_code == 404

    one = client.post(
        "/tasks", headers=AUTH, json={**body, "requestId": "rest-2", "providers": short[:1]}
    )
    assert one.status_code == 422, one.text
    assert one.json()["error"]["field"] == "providers"
    grant = bytes.fromhex(net.providers[0]["grantId"][2:])
    consortium.orgs["bank-b"].clients.authorizations.revoke(grant)
    head = consortium.chain.head()
    revoked = client.post(
        "/tasks", headers=AUTH, json={**body, "requestId": "rest-3", "providers": net.providers}
    )
    assert revoked.status_code == 409, revoked.text
    error = revoked.json()["error"]
    assert error["field"] == "providers[0].grantId"
    assert "providers[0] (bank-b)" in error["message"] and "revoked" in error["message"]
    assert consortium.chain.head() == head
    assert client.get("/tasks/rest-3", headers=AUTH).status_code == 404
