"""The node's operator API against its own OpenAPI document, as a client generator sees it.

schemathesis drives the ASGI app (a real NodeService on the eth-tester consortium, a
real SQLite task store) with requests generated from `/openapi.json`: no answer may be
a 5xx, and every answer must be a status the document lists for that route, with the
declared content type and body schema. Then each error path is provoked the way a
newcomer meets it and its body compared with the one shape, exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.clients.measurements import read_measurement_sets
from ledger.errors import NoGas
from ledger.ids import hex32
from node.algorithms import stats, tee
from node.api import create_app
from node.dataset_store import DatasetStore
from node.peer.trust import ChainTrust
from node.service import NodeService
from node.state import TaskStateStore
from node.tee.settings import TeeSettings
from node.tee.status import TeeStatus
from tests.conftest import Consortium
from tests.node.runner_harness import COLUMNS, standard_network

TOKEN = "fuzz-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 10  # per operation and mode: the file stays well under a minute
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def node_app(consortium: Consortium, tmp_path: Path) -> Iterator[tuple[FastAPI, NodeService]]:
    org = consortium.orgs["bank-a"]
    with TaskStateStore(f"sqlite:///{tmp_path / 'state.db'}") as state:
        service = NodeService(
            org.node_clients,
            org.org_id,
            DatasetStore(tmp_path / "datasets"),
            consortium.deployment.first_block,
            state,
            {stats.NAME: stats},
        )
        # A real trust view of the same chain, polling, so `/peers` answers as on a node,
        # and a real attested-job view (`/tee`) reading the same chain's measurements.
        consortium_client = org.node_clients.consortium
        tee_status = TeeStatus(
            TeeSettings.from_json({"backend": "simulated"}, "tee"),
            None,
            [tee],
            lambda: read_measurement_sets(consortium_client.chain, consortium_client.address),
        )
        with ChainTrust(consortium_client, poll_interval=0.5, fetch_timeout=0.2) as trust:
            app = create_app(service, TOKEN, tmp_path / "uploads", trust=trust, tee=tee_status)
            yield app, service


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_documented_and_none_is_a_server_error(
    node_app: tuple[FastAPI, NodeService], mode: GenerationMode
) -> None:
    """Each operation gets its own bounded, derandomized run, so a failure names the
    operation and reproduces. (schemathesis' own pytest integration for a fixture-built
    app does not run under this pytest version, hence the plain `given`.)"""
    schema = schemathesis.openapi.from_asgi("/openapi.json", node_app[0])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and "requestBody" not in operation.definition.raw:
            continue  # free-form string path parameters have no invalid values

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,  # the same requests on every run: a failure reproduces
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:
            exc.add_note(f"operation: {operation.label} ({mode.value})")
            raise


def test_the_document_lists_the_error_model_and_bearer_scheme(
    node_app: tuple[FastAPI, NodeService],
) -> None:
    doc = TestClient(node_app[0]).get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    error_ref = "#/components/schemas/ErrorBody"
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"400", "413", "500"} <= statuses, (method, path)
            for status in {s for s in statuses if not s.startswith("2")}:  # errors
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (method, path, status)
            if path != "/health":
                assert "401" in statuses and operation["security"] == [{"HTTPBearer": []}]
    assert set(doc["paths"]["/tasks"]["post"]["responses"]) >= {"200", "201", "409", "422"}


# --- each error path, with its exact shape ------------------------------------------------


def _error(response: Any, status: int, code: str, field: str) -> str:
    """The error's message, once status, code, field and the body's keys are checked."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert {"code", "field", "message"} <= set(body["error"])
    assert (body["error"]["code"], body["error"]["field"]) == (code, field), body
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


@pytest.fixture
def client(node_app: tuple[FastAPI, NodeService]) -> TestClient:
    return TestClient(node_app[0])


def test_unknown_route_and_method_answer_the_shape_not_detail(client: TestClient) -> None:
    _error(client.get("/nope", headers=AUTH), 404, "NOT_FOUND", "path")
    _error(client.put("/datasets", headers=AUTH), 405, "METHOD_NOT_ALLOWED", "method")


def test_bad_tokens_and_framing_answer_the_shape(client: TestClient) -> None:
    _error(client.get("/datasets"), 401, "UNAUTHORIZED", "Authorization")
    headers = {**AUTH, "Content-Length": "ten", "Content-Type": "application/json"}
    _error(
        client.post("/grants", headers=headers, content=b"{}"), 400, "BAD_REQUEST", "Content-Length"
    )
    big = {"purpose": "p" * (2 * 1024 * 1024)}
    _error(client.post("/grants", headers=AUTH, json=big), 413, "PAYLOAD_TOO_LARGE", "body")


def test_bad_input_names_the_nested_field(client: TestClient) -> None:
    task = {
        "requestId": "r1",
        "algorithm": stats.NAME,
        "params": {},
        "providers": [{"org": "bank-b"}],
        "validForSeconds": 600,
    }
    message = _error(
        client.post("/tasks", headers=AUTH, json=task), 422, "INVALID_INPUT", "providers[0]"
    )
    assert "'org' and 'dataset'" in message
    task["providers"] = [{"node": "0x" + "11" * 20, "datasetId": "0x12", "datasetVersion": 1}]
    _error(
        client.post("/tasks", headers=AUTH, json=task),
        422,
        "INVALID_INPUT",
        "providers[0].datasetId",
    )


def test_a_contract_refusal_names_the_custom_error(
    client: TestClient, consortium: Consortium
) -> None:
    foreign = {
        "datasetId": "0x" + "22" * 32,
        "granteeOrg": hex32(consortium.orgs["bank-b"].org_id),
        "purpose": "p",
        "validForSeconds": 60,
        "maxUses": 1,
    }
    response = client.post("/grants", headers=AUTH, json=foreign)
    message = _error(response, 409, "CONTRACT_REVERT", "contract")
    error = response.json()["error"]
    assert error["contractError"] == "UnknownDataset"
    assert error["arguments"] == {"datasetId": "0x" + "22" * 32}
    assert "UnknownDataset" in message


def test_an_unknown_task_is_404_in_the_shape(client: TestClient) -> None:
    _error(client.get(f"/tasks/0x{'ab' * 32}", headers=AUTH), 404, "NOT_FOUND", "taskId")


def test_a_failed_import_names_the_uploaded_file_never_the_staging_path(
    client: TestClient, tmp_path: Path
) -> None:
    """What a newcomer saw: `/…/uploads/tmpXXXX/file.csv is not UTF-8 text`."""
    response = client.post(
        "/datasets",
        headers=AUTH,
        data={"name": "accounts", "classification": "2"},
        files={"file": ("balances.csv", b"id,amount\n\xff\xfe,1\n", "text/csv")},
    )
    message = _error(response, 422, "INVALID_INPUT", "dataset file")
    assert "balances.csv" in message, message
    assert str(tmp_path) not in response.text and "uploads" not in response.text
    assert "tmp" not in message.replace("balances.csv", "")


def test_a_bug_answers_500_internal_with_no_traceback_and_is_logged(
    node_app: tuple[FastAPI, NodeService],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, service = node_app

    def broken() -> list[dict[str, Any]]:
        raise KeyError(f"secret {Path(__file__).parent}")

    monkeypatch.setattr(service, "list_grants", broken)
    with caplog.at_level(logging.ERROR, logger="node.api"):
        response = TestClient(app).get("/grants", headers=AUTH)
    message = _error(response, 500, "INTERNAL", "server")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert str(Path(__file__).parent) not in message
    assert any("GET /grants" in r.getMessage() and r.exc_info for r in caplog.records)


def test_an_unreachable_chain_answers_502_in_the_shape(
    node_app: tuple[FastAPI, NodeService], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, service = node_app

    def down() -> list[dict[str, Any]]:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(service, "list_datasets", down)
    _error(TestClient(app).get("/datasets", headers=AUTH), 502, "CHAIN_UNAVAILABLE", "chain")


def test_a_chain_error_with_a_code_answers_that_code(
    node_app: tuple[FastAPI, NodeService], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledger.errors.NoGas` (code NO_GAS) as the service raises it: 502 with its code
    and its words, not CHAIN_UNAVAILABLE and not 500."""
    app, service = node_app
    account = service.clients.account

    def unfunded(*_: object, **__: object) -> dict[str, Any]:
        raise NoGas(account, 0, 21_000, "http://127.0.0.1:8545")

    monkeypatch.setattr(service, "grant", unfunded)
    grant = {
        "datasetId": "accounts",
        "granteeOrg": "bank-b",
        "purpose": "p",
        "validForSeconds": 60,
        "maxUses": 1,
    }
    response = TestClient(app).post("/grants", headers=AUTH, json=grant)
    message = _error(response, 502, "NO_GAS", "chain")
    assert message.startswith(f"account {account} has no gas")


def test_post_tasks_answers_201_then_200_for_a_retry_and_409_for_a_reused_request_id(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A newcomer retrying `provnet task create` (short-form providers, by name) sees
    the same task with 200; reusing the request id for another query is refused."""
    net = standard_network(consortium, tmp_path)
    client = TestClient(create_app(net.creator, TOKEN, tmp_path / "uploads"))
    task = {
        "requestId": "job-1",
        "algorithm": stats.NAME,
        "params": {
            "columns": COLUMNS,
            "value_column": "balance",
            "group_column": "segment",
            "categories": ["retail", "business", "private"],
        },
        "providers": [
            {"org": "bank-b", "dataset": "bank-b/accounts"},
            {"org": "regulator", "dataset": "regulator/accounts"},
        ],
        "validForSeconds": 3600,
    }
    created = client.post("/tasks", headers=AUTH, json=task)
    assert created.status_code == 201, created.text
    head = consortium.chain.head()
    again = client.post("/tasks", headers=AUTH, json=task)
    assert again.status_code == 200, again.text
    assert again.json()["taskId"] == created.json()["taskId"]
    by_request = client.get("/tasks/job-1", headers=AUTH)
    assert by_request.status_code == 200 and by_request.json()["taskId"] == created.json()["taskId"]
    other = {**task, "params": {**task["params"], "categories": ["retail"]}}
    _error(client.post("/tasks", headers=AUTH, json=other), 409, "CONFLICT", "requestId")
    assert consortium.chain.head() == head
