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
