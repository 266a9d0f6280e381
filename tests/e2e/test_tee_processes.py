"""An attested enclave job between real node processes on anvil, audited by the regulator.

bank-a's node is the COMPUTE host (``"tee": {"backend": "simulated"}``); bank-b (balances)
and the regulator's organisation (call counts) own the data and accept only ``simulated``
enclaves signed by bank-a's platform key. First nobody has voted for the enclave's
measurement: both owners refuse the report (UNKNOWN_MEASUREMENT, recorded on chain and
shown in the task's status) and nothing is provisioned. Then the consortium votes the
measurement in and the same job completes: the output equals the join computed here
from the CSV rows, and ``provnet audit verify`` passes with a ``tee_attestation`` check
that names the backend ``simulated``, and fails when the disclosed report or receipt
is altered.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.keys import read_keystore
from node.algorithms import tee
from node.algorithms.package import package_of
from node.config import NodeConfig
from node.tee.settings import simulated_platform_key
from node.tee.simulated import simulated_measurement
from tests.e2e.cluster import PASSWORD, Cluster, NodeProcess, running_cluster

PARAMS = {"key": "account", "sum": ["balance", "calls"]}


def configure_tee(nodes: dict[str, NodeProcess]) -> None:
    """bank-a hosts; the owners trust its simulated platform key."""
    host = nodes["bank-a"]
    account = read_keystore(NodeConfig.load(host.config_path).keystore, PASSWORD)
    platform = simulated_platform_key(bytes(account.key)).public_key()
    key = platform.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    for name, node in nodes.items():
        raw = json.loads(node.config_path.read_text())
        raw["tee"] = (
            {"backend": "simulated"}
            if name == "bank-a"
            else {"allowed_backends": ["simulated"], "simulated_platform_keys": [key]}
        )
        node.config_path.write_text(json.dumps(raw))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.anvil import running_anvil

    tmp: Path = tmp_path_factory.mktemp("tee")
    with (
        running_anvil() as url,
        running_cluster(url, tmp, approve=(tee,), configure=configure_tee) as running,
    ):
        yield running


def share(cluster: Cluster, name: str, column: str, rows: list[tuple[str, str]]) -> dict[str, Any]:
    path = cluster.tmp / f"{name}-{column}.csv"
    path.write_text(f"account,{column}\n" + "".join(f"{a},{v}\n" for a, v in rows))
    return cluster.share(name, path, column, "fraud-exposure")


def create(cluster: Cluster, request_id: str, providers: list[dict[str, Any]]) -> str:
    with cluster.nodes["bank-a"].api() as api:
        created = api.post(
            "/tasks",
            json={
                "requestId": request_id,
                "algorithm": tee.NAME,
                "params": PARAMS,
                "providers": providers,
                "validForSeconds": 600,
            },
        )
        assert created.status_code == 201, created.text
        return str(created.json()["taskId"])


def test_owners_refuse_an_unvoted_enclave_then_a_voted_one_runs_and_is_audited(
    cluster: Cluster, tmp_path: Path
) -> None:
    rng = random.Random(17)
    balances = {f"ACC{a:04d}": rng.randrange(-10_000, 900_000) for a in rng.sample(range(300), 120)}
    calls = {f"ACC{a:04d}": rng.randrange(0, 400) for a in rng.sample(range(300), 150)}
    providers = [
        share(cluster, "bank-b", "balance", [(a, f"{v / 100:.2f}") for a, v in balances.items()]),
        share(cluster, "regulator", "calls", [(a, str(v)) for a, v in calls.items()]),
    ]
    owners = sorted(p["node"].lower() for p in providers)

    # 1. Nobody voted for the enclave's measurement: every owner refuses, on chain.
    refused = create(cluster, "tee-unvoted", providers)
    status = cluster.wait_terminal(refused)
    assert status["state"] == "FAILED", status
    assert status["failure"]["reason"] == "ATTESTATION_REFUSED", status
    got = status["attestationRefusals"]
    assert sorted(r["node"].lower() for r in got) == owners, got
    assert {r["reason"] for r in got} == {"UNKNOWN_MEASUREMENT"}, got

    # 2. The consortium votes the measurement in (bank-a proposes, bank-b's vote carries).
    package = package_of(tee)
    measurement = simulated_measurement(package)
    proposal = cluster.nodes["bank-a"].admin.consortium.propose_measurement(
        measurement, package.digest
    )
    cluster.nodes["bank-b"].admin.consortium.vote(proposal)
    task = create(cluster, "tee-voted", providers)
    status = cluster.wait_terminal(task)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    with cluster.nodes["bank-a"].api() as api:
        answer = api.get(f"/tasks/{task}/result").json()
    both = sorted(set(balances) & set(calls))
    total = sum(balances[a] for a in both)
    assert answer["result"]["output"] == {
        "matched": len(both),
        "sums": {
            "balance": f"{'-' if total < 0 else ''}{abs(total) // 100}.{abs(total) % 100:02d}",
            "calls": sum(calls[a] for a in both),
        },
        "suppressed": None,
    }
    assert answer["result"]["backend"] == "simulated"

    # 3. The regulator's audit: every check passes, the TEE one naming the backend.
    cluster.wait_settled(task)
    transcripts = cluster.dump_transcripts(task, tmp_path / "transcripts")
    disclosed = tmp_path / "result.json"
    disclosed.write_text(json.dumps(answer))
    code, report = cluster.audit(
        task, "--transcripts", str(transcripts), "--params", str(disclosed)
    )
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, [c for c in report["checks"] if c["status"] == "fail"]
    assert checks["tee_attestation"]["status"] == "pass", checks["tee_attestation"]
    assert "simulated" in checks["tee_attestation"]["detail"]

    # 4. An altered report, or an altered receipt, fails the audit.
    for alter in ("report", "receipt"):
        forged = copy.deepcopy(answer)
        bundle = forged["result"]["attestation"]
        if alter == "report":
            bundle["reports"][owners[0]]["claims"]["issuedAt"] += 1
        else:
            bundle["receipt"]["erasedAt"] += 1
        path = tmp_path / f"forged-{alter}.json"
        path.write_text(json.dumps(forged))
        code, report = cluster.audit(task, "--transcripts", str(transcripts), "--params", str(path))
        checks = {c["name"]: c for c in report["checks"]}
        assert code != 0 and checks["tee_attestation"]["status"] == "fail", (alter, checks)
