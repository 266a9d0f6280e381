"""node.json ``tee``: what a node hosts and trusts, and what ``GET /tee`` tells its operator.

A data owner must opt in to every backend (none by default), allowing ``simulated``
needs the hosts' platform keys, and every answer about the simulated backend says it
gives no isolation. The API answer is checked against the chain's trusted set as it
changes by vote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from ledger.clients.measurements import read_measurement_sets
from ledger.ids import InvalidInput
from node.algorithms import tee
from node.api import create_app
from node.dataset_store import DatasetStore
from node.service import NodeService
from node.tee.settings import TeeSettings, simulated_platform_key
from node.tee.simulated import SIMULATED, SimulatedBackend
from node.tee.status import TeeStatus
from tests.conftest import Consortium
from tests.node.tee.jobs import trust_measurement

KEY = "ab" * 32


def test_an_owner_accepts_no_backend_unless_it_opts_in() -> None:
    assert TeeSettings.from_json({}, "tee").trust() is None
    settings = TeeSettings.from_json(
        {"allowed_backends": ["simulated"], "simulated_platform_keys": [KEY]}, "tee"
    )
    trust = settings.trust()
    assert trust is not None and trust.policy.allowed_backends == frozenset({SIMULATED})
    assert set(trust.verifiers) == {SIMULATED}
    assert TeeSettings.from_json(settings.to_json(), "tee") == settings


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"backend": "sgx"}, "tee.backend"),
        ({"allowed_backends": ["simulated"]}, "tee.simulated_platform_keys"),
        ({"allowed_backends": "simulated"}, "tee.allowed_backends"),
        ({"simulated_platform_keys": ["00"]}, "tee.simulated_platform_keys[0]"),
        ({"max_report_age": 5}, "tee.max_report_age"),
        ({"surprise": 1}, "tee"),
    ],
)
def test_bad_settings_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        TeeSettings.from_json(raw, "tee")
    assert refused.value.field == field, refused.value


def test_the_platform_key_is_derived_from_the_account_key() -> None:
    one = (
        simulated_platform_key(b"\x01" * 32)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    again = (
        simulated_platform_key(b"\x01" * 32)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    other = (
        simulated_platform_key(b"\x02" * 32)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert one == again != other
    host = TeeSettings.from_json({"backend": "simulated"}, "tee").host(b"\x01" * 32)
    assert isinstance(host, SimulatedBackend) and host.platform_public_key == one


def test_get_tee_says_simulated_and_follows_the_vote(
    consortium: Consortium, tmp_path: Path
) -> None:
    org = consortium.orgs["bank-a"]
    service = NodeService(org.node_clients, org.org_id, DatasetStore(tmp_path / "datasets"))
    settings = TeeSettings.from_json(
        {
            "backend": "simulated",
            "allowed_backends": ["simulated"],
            "simulated_platform_keys": [KEY],
        },
        "tee",
    )
    address = consortium.deployment.address("Consortium")
    status = TeeStatus(
        settings,
        bytes.fromhex(KEY),
        [tee],
        lambda: read_measurement_sets(consortium.chain, address),
    )
    client = TestClient(create_app(service, "t0ken", tmp_path / "uploads", tee=status))
    auth = {"Authorization": "Bearer t0ken"}
    assert client.get("/tee").status_code == 401
    before = client.get("/tee", headers=auth).json()
    assert before["host"]["backend"] == "simulated" and "simulated" in before["host"]["isolation"]
    assert before["host"]["platformKey"] == KEY
    assert before["owner"]["allowedBackends"] == ["simulated"]
    (build,) = before["thisBuild"]
    assert build["algorithm"] == tee.NAME and not build["trusted"]
    assert "measurement propose" in before["next"]
    measurement = trust_measurement(consortium, tee)
    after = client.get("/tee", headers=auth).json()
    assert after["thisBuild"][0]["measurement"] == "0x" + measurement.hex()
    assert after["thisBuild"][0]["trusted"] and after["next"].startswith("ready")
