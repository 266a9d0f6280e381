"""`/v1/tasks/{id}/verification` through the real app (FastAPI TestClient, real sign-in,
the scenario's SQLite index and the regulator's node fetching evidence over gRPC):
what the API answers equals `verify_task` on the nodes' own transcripts, its report is
the exact bytes of its digest and verifies with the auditor's key, and who may do what."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from auditor.api.app import create_app
from auditor.api.context import ServiceContext
from auditor.auth.client import sign_in
from auditor.auth.sessions import SessionStore
from auditor.querylog.log import QueryLog
from auditor.replay import deployment_checks, task_history
from auditor.report import dsse
from auditor.report.provenance import prov_json
from auditor.service.verification import TaskVerifier
from auditor.verify.run import verify_task
from scripts.audit_fetch_command import RegulatorNode
from tests.auditor.service_scenario import Scenario
from tests.auditor.verify_scenario import PARAMS

BASE = "http://testserver"


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    key: bytes  # the auditor's public key (PEM)

    def call(self, method: str, path: str, who: str | None, **kw: Any) -> Any:
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture(scope="module")
def api(service_scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    s = service_scenario
    key_path = tmp_path_factory.mktemp("auditor-key") / "report-key.pem"
    key_path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = dsse.load_signer(key_path)
    regulator = RegulatorNode(s.regulator_config, timeout=5.0, settle=5.0)
    consortium = s.consortium.deployment.address("Consortium")
    ctx = ServiceContext(
        store=s.index,
        sessions=SessionStore(s.index, s.chain.chain_id, consortium, audience=BASE),
        query_log=QueryLog(s.index),
        verifier=TaskVerifier(regulator.chain, regulator.deployment, regulator, signer),
        chain_id=s.chain.chain_id,
        consortium_address=consortium,
        version="test",
    )
    with TestClient(create_app(ctx), base_url=BASE) as client:
        tokens = {
            name: sign_in(BASE, s.consortium.orgs[name].admin, client=client)
            for name in ("regulator", "bank-b")
        }
        yield Api(client, tokens, dsse.public_key_pem(signer))


def test_the_api_verification_equals_verify_task_on_the_same_material(
    service_scenario: Scenario, api: Api
) -> None:
    s = service_scenario
    path = f"/v1/tasks/0x{s.task_id.hex()}/verification"
    posted = api.call("POST", path, "regulator", json=s.result_answer)
    assert posted.status_code == 201, posted.text
    answer = posted.json()

    chain, deployment = s.chain, s.consortium.deployment
    history = task_history(chain, deployment, s.task_id)
    expected = verify_task(
        history, s.transcripts(), s.params, deployment=deployment_checks(chain, deployment)
    )
    assert answer["checks"] == [c.to_json() for c in expected]
    assert answer["verified"] is True and answer["evidenceProblems"] == {}
    assert answer["requestedBy"] == s.consortium.orgs["regulator"].admin.address

    latest = api.call("GET", path, "regulator")
    assert latest.json() == answer

    report = api.call("GET", path + "/report", "regulator")
    assert report.status_code == 200
    raw = report.content
    assert answer["reportDigest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    statement = dsse.verify(json.loads(raw), dsse.public_key(api.key))
    assert statement["predicate"]["checks"] == answer["checks"]
    assert statement["predicate"]["verificationResult"] == "PASSED"

    prov = api.call("GET", path + "/prov", "regulator")
    assert prov.json() == json.loads(prov_json(history))

    # A participant's member reads it too; only regulators run one.
    assert api.call("GET", path, "bank-b").json()["reportDigest"] == answer["reportDigest"]
    refused = api.call("POST", path, "bank-b")
    assert refused.status_code == 403, refused.text
    assert api.call("GET", path, None).status_code == 401


def test_unknown_tasks_and_missing_runs_answer_404_in_the_error_shape(api: Api) -> None:
    unknown = "/v1/tasks/0x" + "11" * 32 + "/verification"
    for method, who in (("GET", "regulator"), ("POST", "regulator"), ("GET", "bank-b")):
        answer = api.call(method, unknown, who)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["field"] == "taskId"
    malformed = api.call("POST", "/v1/tasks/0x12/verification", "regulator")
    assert malformed.status_code == 422


def test_malformed_disclosed_parameters_are_refused(service_scenario: Scenario, api: Api) -> None:
    path = f"/v1/tasks/0x{service_scenario.task_id.hex()}/verification"
    answer = api.call("POST", path, "regulator", json={"params": {"salt": 5}})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "params"


def test_a_member_sees_no_verification_of_a_task_it_took_no_part_in(
    service_scenario: Scenario, api: Api
) -> None:
    """bank-a creates a task with the regulator's node only: bank-b is no part of it."""
    s = service_scenario
    providers = s.net.providers
    s.net.providers = [p for p in providers if p["node"] == s.address("regulator")]
    try:
        hidden = s.net.create_unchecked("without-bank-b", PARAMS)
    finally:
        s.net.providers = providers
    s.catch_up()
    path = f"/v1/tasks/0x{hidden.hex()}/verification"
    posted = api.call("POST", path, "regulator")
    assert posted.status_code == 201, posted.text
    assert posted.json()["verified"] is False  # it has not run: no result to verify
    assert api.call("GET", path, "regulator").status_code == 200
    for suffix in ("", "/report", "/prov"):
        refused = api.call("GET", path + suffix, "bank-b")
        assert refused.status_code == 404, (suffix, refused.text)
        assert refused.json()["error"]["field"] == "taskId"
