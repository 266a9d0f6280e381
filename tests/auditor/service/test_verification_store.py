"""The `verifications` table on SQLite and PostgreSQL: a run is stored and read back as
the API answers it, its envelope as the exact bytes of its digest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from auditor.api.routes.verification import latest_json, store
from auditor.index.store import IndexStore
from auditor.service.verification import TaskVerifier, Verification
from tests.auditor.service_scenario import Scenario
from tests.node.conftest import BACKENDS, database_url


@pytest.fixture(scope="module")
def verification(service_scenario: Scenario) -> Verification:
    """A signed verification of the scenario's task on the nodes' own transcripts."""
    s = service_scenario
    signer = CryptoSigner(Ed25519PrivateKey.generate())
    verifier = TaskVerifier(s.chain, s.consortium.deployment, None, signer)
    return verifier.verify(s.task_id, s.params, s.transcripts())


@pytest.fixture(params=BACKENDS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    for url in database_url(str(request.param), tmp_path):
        store_ = IndexStore(url)
        try:
            yield store_
        finally:
            store_.close()


def test_a_run_is_stored_and_read_back_as_served(
    index: IndexStore, verification: Verification
) -> None:
    assert verification.verified and verification.envelope is not None
    with index.engine.connect().execution_options(provnet_write=True) as conn:
        with conn.begin():
            assert latest_json(conn, verification.task_id) is None
            store(conn, verification, "0x" + "ab" * 20)
            store(conn, verification, "0x" + "cd" * 20)
        answer = latest_json(conn, verification.task_id)
        row = conn.exec_driver_sql("SELECT envelope FROM verifications ORDER BY id").all()
    assert answer is not None and answer["requestedBy"] == "0x" + "cd" * 20
    assert {k: answer[k] for k in verification.to_json()} == json.loads(
        json.dumps(verification.to_json())
    )
    stored = bytes(row[-1][0])
    assert verification.report_digest == "sha256:" + hashlib.sha256(stored).hexdigest()
    assert json.loads(stored) == verification.envelope
    assert answer["links"]["report"].endswith("/verification/report")
