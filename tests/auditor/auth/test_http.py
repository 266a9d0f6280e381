"""Sign-in and the query log over HTTP, through the auditor's real app (``create_app``)
on the indexed anvil chain: FastAPI's TestClient for the API, uvicorn for the CLI.

What an attacker member would try: no token, a forged or expired token, a body naming
another organisation, a bank reading the regulators' query log.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient

from auditor.api.app import create_app
from auditor.api.context import ServiceContext
from auditor.auth import challenge as typed
from auditor.auth.client import SignInError, sign_in
from auditor.auth.fastapi import COOKIE_NAME
from auditor.auth.sessions import SessionStore
from auditor.index.store import IndexStore
from auditor.querylog.log import QueryLog
from ledger import merkle
from scripts.cli import main as cli
from tests.anvil import free_port
from tests.auditor.auth.conftest import AUDIENCE, World

BASE = "http://testserver"


class Service:
    def __init__(self, world: World, store: IndexStore) -> None:
        self.sessions = SessionStore(store, world.chain_id, world.consortium_address, AUDIENCE)
        self.log = QueryLog(store)
        ctx = ServiceContext(
            store=store,
            sessions=self.sessions,
            query_log=self.log,
            verifier=None,
            chain_id=world.chain_id,
            consortium_address=world.consortium_address,
            version="test",
        )
        self.app: FastAPI = create_app(ctx)
        self.http = TestClient(self.app, base_url=BASE)

    def token(self, account: Any) -> str:
        return sign_in(BASE, account, client=self.http)

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(path, headers=headers, **kw)


@pytest.fixture
def service(world: World, empty_store: IndexStore) -> Service:
    return Service(world, empty_store)


def error_of(response: httpx.Response, status: int, field: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["field"] == field, body
    assert body["error"]["code"] and body["error"]["message"]
    return str(body["error"]["message"])


def test_sign_in_then_bearer_or_cookie_names_the_org(world: World, service: Service) -> None:
    token = service.token(world.account("regulator/node"))
    by_bearer = service.get("/v1/auth/session", token)
    assert by_bearer.status_code == 200
    p = by_bearer.json()["principal"]
    reg = world.consortium.orgs["regulator"]
    assert p["address"] == reg.node.address
    assert p["org"] == "0x" + reg.org_id.hex()
    assert p["orgName"] == "regulator" and p["isRegulator"] is True
    with TestClient(service.app, base_url=BASE, cookies={COOKIE_NAME: token}) as browser:
        by_cookie = browser.get("/v1/auth/session")
    assert by_cookie.json() == by_bearer.json()
    # A signed-in request to the rest of the API goes through.
    assert service.get("/v1/orgs", token).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + "A" * 5000},
    ],
    ids=["none", "empty", "forged", "basic", "huge"],
)
def test_requests_without_a_valid_token_are_401_in_the_error_shape(
    service: Service, headers: dict[str, str]
) -> None:
    for path in ("/v1/auth/session", "/v1/orgs", "/v1/query-log"):
        response = service.http.get(path, headers=headers)
        error_of(response, 401, "Authorization")
        assert response.headers["www-authenticate"] == "Bearer"
    assert service.log.size() == 0


def test_sign_in_refusals_over_http(world: World, service: Service) -> None:
    stranger = Account.create()
    response = service.http.post("/v1/auth/challenge", json={"address": stranger.address})
    assert "not registered" in error_of(response, 401, "address")
    error_of(service.http.post("/v1/auth/challenge", json={"address": "0x12"}), 422, "address")
    error_of(service.http.post("/v1/auth/challenge", json={}), 422, "address")

    bank = world.account("bank-a/admin")
    data = service.http.post("/v1/auth/challenge", json={"address": bank.address}).json()
    body = {
        "address": bank.address,
        "nonce": data["nonce"],
        "signature": typed.sign(stranger, data["typedData"]),
    }
    error_of(service.http.post("/v1/auth/token", json=body), 401, "signature")
    # Naming an organisation (the regulator's) in the request is not accepted at all.
    data = service.http.post("/v1/auth/challenge", json={"address": bank.address}).json()
    body = {
        "address": bank.address,
        "nonce": data["nonce"],
        "signature": typed.sign(bank, data["typedData"]),
        "org": "0x" + world.consortium.orgs["regulator"].org_id.hex(),
    }
    error_of(service.http.post("/v1/auth/token", json=body), 422, "org")
    with pytest.raises(SignInError, match="not registered"):
        sign_in(BASE, stranger, client=service.http)


def test_logout_ends_the_token(world: World, service: Service) -> None:
    token = service.token(world.account("bank-a/node"))
    answer = service.http.post("/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    error_of(service.get("/v1/auth/session", token), 401, "Authorization")


def test_the_query_log_is_for_regulators_and_logs_their_reads(
    world: World, service: Service
) -> None:
    bank = service.token(world.account("bank-a/admin"))
    regulator = service.token(world.account("regulator/admin"))
    error_of(service.get("/v1/query-log", bank), 403, "Authorization")
    error_of(service.get("/v1/query-log/checkpoints", bank), 403, "Authorization")
    error_of(
        service.get("/v1/query-log/proof/inclusion?index=0&treeSize=1", bank), 403, "Authorization"
    )
    assert service.get("/v1/orgs", bank).status_code == 200
    assert service.log.size() == 0  # a bank's requests are not the regulators' log

    assert service.get("/v1/orgs?limit=5", regulator).status_code == 200
    answer = service.get("/v1/query-log", regulator)
    assert answer.status_code == 200
    items = answer.json()["items"]
    reg = world.consortium.orgs["regulator"]
    assert [(e["seq"], e["method"], e["target"]) for e in items] == [
        (0, "GET", "/v1/orgs?limit=5"),
        (1, "GET", "/v1/query-log"),  # reading the log is logged, before the answer
    ]
    assert {e["address"] for e in items} == {reg.admin.address}
    assert {e["org"] for e in items} == {"0x" + reg.org_id.hex()}
    assert answer.json()["page"] == {"total": 2, "limit": 50, "offset": 0, "nextOffset": None}
    csv = service.get("/v1/query-log?format=csv&limit=1", regulator)
    assert csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.splitlines()
    assert rows[0] == "seq,at,address,org,method,target,leafHash"
    assert rows[1].startswith(f"0,{items[0]['at']},{reg.admin.address},") and len(rows) == 2


def test_proof_routes_answer_proofs_that_verify(world: World, service: Service) -> None:
    regulator = service.token(world.account("regulator/node"))
    for i in range(4):
        service.get(f"/v1/orgs?offset={i}", regulator)
    size = service.log.size()  # 4
    answer = service.get(f"/v1/query-log/proof/inclusion?index=2&treeSize={size}", regulator)
    assert answer.status_code == 200
    proof = answer.json()
    root = bytes.fromhex(proof["rootHash"][2:])
    assert root == service.log.root(size)
    leaf = merkle.leaf_hash(
        json.dumps(
            {k: v for k, v in proof["entry"].items() if k != "leafHash"},
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
    )
    assert "0x" + leaf.hex() == proof["leafHash"]
    path = [bytes.fromhex(p[2:]) for p in proof["proof"]]
    assert merkle.verify_inclusion(leaf, 2, size, path, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), 2, size, path, root)

    answer = service.get(f"/v1/query-log/proof/consistency?from=2&to={size}", regulator)
    c = answer.json()
    assert merkle.verify_consistency(
        2,
        size,
        bytes.fromhex(c["fromRoot"][2:]),
        bytes.fromhex(c["toRoot"][2:]),
        [bytes.fromhex(p[2:]) for p in c["proof"]],
    )
    assert bytes.fromhex(c["fromRoot"][2:]) == service.log.root(2)

    for query, field in (
        ("inclusion?index=9&treeSize=3", "index"),
        ("inclusion?index=0&treeSize=999", "treeSize"),
        ("inclusion?index=-1&treeSize=2", "index"),
        ("inclusion?index=x&treeSize=2", "index"),
        ("consistency?from=0&to=2", "from"),
        ("consistency?from=3&to=2", "from"),
        ("consistency?from=1&to=999", "to"),
    ):
        error_of(service.get(f"/v1/query-log/proof/{query}", regulator), 422, field)


@pytest.fixture
def served(service: Service) -> Iterator[str]:
    """The same app on a real socket (uvicorn in a thread), for the CLI."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_the_cli_prints_a_working_token(
    world: World,
    service: Service,
    served: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = world.account("regulator/admin")
    keystore = tmp_path / "admin.json"
    # A cheap KDF: the test is about sign-in, not about scrypt's cost.
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="pbkdf2", iterations=2)))
    monkeypatch.setenv("AUDITOR_TEST_PASSWORD", "pw")
    argv = ["auditor", "token", "--url", served, "--key", str(keystore)]
    assert cli([*argv, "--password-env", "AUDITOR_TEST_PASSWORD"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert "\n" not in token and "regulator" in err
    principal = service.sessions.principal(token)
    assert principal is not None and principal.address == account.address

    monkeypatch.delenv("PROVNET_ADMIN_PASSWORD", raising=False)
    assert cli(argv) != 0  # the default variable is not set: a clear error, no token
    out, err = capsys.readouterr()
    assert out == "" and "PROVNET_ADMIN_PASSWORD" in err

    stranger = tmp_path / "stranger.json"
    stranger.write_text(
        json.dumps(Account.encrypt(Account.create().key, "pw", kdf="pbkdf2", iterations=2))
    )
    assert cli([*argv[:-1], str(stranger), "--password-env", "AUDITOR_TEST_PASSWORD"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "not registered" in err
    assert os.environ.get("AUDITOR_TEST_PASSWORD") == "pw"


def test_openapi_documents_sign_in_and_the_query_log(service: Service) -> None:
    paths = service.http.get("/openapi.json").json()["paths"]
    for path, method, statuses in (
        ("/v1/auth/challenge", "post", {"401", "422"}),
        ("/v1/auth/token", "post", {"401", "422"}),
        ("/v1/query-log", "get", {"401", "403"}),
        ("/v1/query-log/checkpoints", "get", {"401", "403"}),
        ("/v1/query-log/proof/inclusion", "get", {"401", "403", "422"}),
        ("/v1/query-log/proof/consistency", "get", {"401", "403", "422"}),
    ):
        assert statuses <= set(paths[path][method]["responses"]), path
