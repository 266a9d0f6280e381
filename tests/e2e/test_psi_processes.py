"""Every PSI mode between real node processes on anvil, each run verified by `provnet audit verify`.

bank-a (the requester) matches its own customer list, written with the formatting
differences real exports have (``+86 138 ...``, ``138-...``), against bank-b's and the
regulator's customer datasets over the nodes' mutual-TLS peer mesh. Each result is
compared with the same question answered by Python sets over the normalised phone
numbers, and the regulator's verifier must pass every check of the run, including the
pairwise comparison of both sides' message transcripts.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.ids import hex32
from node.algorithms import psi, psi_fast, stats
from node.algorithms.identifiers import normalise
from node.fastpsi.driver import REQUIRE_ENV as REQUIRE_FAST_PSI
from node.fastpsi.driver import is_available as fast_psi_available
from tests.e2e.cluster import Cluster, running_cluster

OVERLAP = 30  # customers bank-a shares with each provider (above the minimum group of 10)
SHARED_BY_ALL = 15  # of those, the ones all three banks know


def _phone(i: int) -> str:
    return f"139{i:08d}"


def _styled(number: str, rng: random.Random) -> str:
    """The same number as another bank's export might write it."""
    style = rng.randrange(4)
    if style == 0:
        return f"+86 {number[:3]} {number[3:7]} {number[7:]}"
    if style == 1:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    if style == 2:
        return f"(0086) {number}"
    return number


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.anvil import running_anvil

    tmp: Path = tmp_path_factory.mktemp("psi")
    with (
        running_anvil() as url,
        running_cluster(url, tmp, protocol_timeout=120, approve=(stats, psi, psi_fast)) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def customers(cluster: Cluster) -> dict[str, Any]:
    """bank-a's own list, and bank-b's and the regulator's granted to bank-a."""
    rng = random.Random(14)
    shared_all = [_phone(i) for i in range(SHARED_BY_ALL)]
    only_b = [_phone(100 + i) for i in range(OVERLAP - SHARED_BY_ALL)]
    only_r = [_phone(200 + i) for i in range(OVERLAP - SHARED_BY_ALL)]
    bank_a = shared_all + only_b + only_r + [_phone(300 + i) for i in range(25)]
    # A duplicate row and an unusable one: dedup and normalisation must absorb both.
    a_rows = [{"phone": _styled(p, rng)} for p in bank_a] + [
        {"phone": _styled(bank_a[0], rng)},
        {"phone": "not a phone"},
    ]
    b_numbers = shared_all + only_b + [_phone(400 + i) for i in range(40)]
    r_numbers = shared_all + only_r + [_phone(500 + i) for i in range(40)]
    b_rows = [
        {
            "phone": _styled(p, rng),
            "exposure": f"{rng.randrange(-50_000, 500_000) / 100:.2f}",
            "segment": rng.choice(["retail", "business"]),
        }
        for p in b_numbers
    ]
    b_rows.append({**b_rows[0], "exposure": "10.00"})  # a second account of one customer
    r_rows = [{"phone": _styled(p, rng), "flag": rng.choice(["watch", "clear"])} for p in r_numbers]
    out: dict[str, Any] = {"rows": {"bank-a": a_rows, "bank-b": b_rows, "regulator": r_rows}}
    for name, rows in out["rows"].items():
        path = cluster.tmp / f"{name}-customers.csv"
        header = list(rows[0])
        path.write_text(
            ",".join(header) + "\n" + "".join(",".join(r[h] for h in header) + "\n" for r in rows)
        )
        node = cluster.nodes[name]
        with node.api() as api, path.open("rb") as fh:
            dataset = api.post(
                "/datasets",
                data={"name": "customers", "classification": "2", "identifierColumns": "phone"},
                files={"file": (path.name, fh, "text/csv")},
            )
            assert dataset.status_code == 201, dataset.text
            entry: dict[str, Any] = {"datasetId": dataset.json()["datasetId"]}
            if name != "bank-a":
                grant = api.post(
                    "/grants",
                    json={
                        "datasetId": entry["datasetId"],
                        "granteeOrg": hex32(cluster.nodes["bank-a"].org_id),
                        "purpose": "customer-alignment",
                        "validForSeconds": 3600,
                        "maxUses": 10,
                    },
                )
                assert grant.status_code == 201, grant.text
                entry["grantId"] = grant.json()["grantId"]
        out[name] = entry
    return out


def _normalised(rows: list[dict[str, str]]) -> set[str]:
    out = set()
    for row in rows:
        try:
            out.add(normalise("phone", row["phone"]))
        except ValueError:
            continue
    return out


def _provider(cluster: Cluster, customers: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "node": cluster.nodes[name].address,
        "datasetId": customers[name]["datasetId"],
        "datasetVersion": 1,
        "grantId": customers[name]["grantId"],
    }


def _run(
    cluster: Cluster, customers: dict[str, Any], request_id: str, params: dict[str, Any],
    responders: list[str], where: Path, algorithm: str = psi.NAME,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Create the task at bank-a, wait for it, read the result and audit the run."""
    with cluster.nodes["bank-a"].api() as api:
        created = api.post(
            "/tasks",
            json={
                "requestId": request_id,
                "algorithm": algorithm,
                "params": params,
                "dataset": {"dataset": "customers"},
                "providers": [_provider(cluster, customers, r) for r in responders],
                "validForSeconds": 900,
            },
        )
        assert created.status_code == 201, created.text
        task = created.json()["taskId"]
    status = cluster.wait_terminal(task, timeout=300)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    with cluster.nodes["bank-a"].api() as api:
        answer = api.get(f"/tasks/{task}/result").json()
    cluster.wait_settled(task)
    transcripts = cluster.dump_transcripts(task, where / "transcripts")
    params_file = where / "result.json"  # what `task result` prints: it opens the commitment
    params_file.write_text(json.dumps(answer))
    code, report = cluster.audit(
        task, "--transcripts", str(transcripts), "--params", str(params_file)
    )
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert code == 0 and not failed, failed
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    for judged in ("evidence_roots_match", "params_commitment",
                   "input_commitments_match_datasets", "grants_valid_and_metered"):  # fmt: skip
        assert statuses[judged] == "pass", (judged, statuses)
    pairwise = "not-applicable" if algorithm == psi_fast.NAME else "pass"
    assert statuses["transcripts_agree_pairwise"] == pairwise, statuses
    return answer["result"], report


def _params(mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "identifier_kind": "phone",
        "requester_column": "phone",
        "responder_column": "phone",
        **extra,
    }


def test_intersection_equals_python_sets(
    cluster: Cluster, customers: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = _run(cluster, customers, "psi-intersection", _params("intersection"),
                     ["bank-b"], tmp_path)  # fmt: skip
    rows = customers["rows"]
    expected = _normalised(rows["bank-a"]) & _normalised(rows["bank-b"])
    assert result["intersection"] == sorted(expected)
    assert result["cardinality"] == len(expected) == OVERLAP
    assert result["invalidRequesterRows"] == 1


def test_three_party_cardinality_counts_only_customers_all_share(
    cluster: Cluster, customers: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = _run(cluster, customers, "psi-cardinality-3", _params("cardinality"),
                     ["bank-b", "regulator"], tmp_path)  # fmt: skip
    rows = customers["rows"]
    expected = (
        _normalised(rows["bank-a"]) & _normalised(rows["bank-b"]) & _normalised(rows["regulator"])
    )
    assert result["cardinality"] == len(expected) == SHARED_BY_ALL
    assert result["intersection"] is None
    assert result["suppressed"] is False


def test_intersection_sum_of_exposures(
    cluster: Cluster, customers: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = _run(cluster, customers, "psi-sum",
                     _params("intersection-sum", value_column="exposure"),
                     ["bank-b"], tmp_path)  # fmt: skip
    rows = customers["rows"]
    mine = _normalised(rows["bank-a"])
    total = sum(
        (Decimal(r["exposure"]) for r in rows["bank-b"] if normalise("phone", r["phone"]) in mine),
        Decimal(0),
    )
    assert Decimal(result["sum"]) == total
    assert result["cardinality"] == OVERLAP


def test_intersection_payload_returns_the_matched_rows(
    cluster: Cluster, customers: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = _run(cluster, customers, "psi-payload",
                     _params("intersection-payload", payload_columns=["flag"]),
                     ["regulator"], tmp_path)  # fmt: skip
    rows = customers["rows"]
    mine = _normalised(rows["bank-a"])
    expected: dict[str, list[dict[str, str]]] = {}
    for r in rows["regulator"]:
        key = normalise("phone", r["phone"])
        if key in mine:
            expected.setdefault(key, []).append({"flag": r["flag"]})
    got = {entry["identifier"]: entry["rows"] for entry in result["payload"]}
    assert got == expected
    assert result["intersection"] == sorted(expected)


@pytest.mark.skipif(
    not fast_psi_available() and not os.environ.get(REQUIRE_FAST_PSI),
    reason="the fast PSI engine is not installed (make fast-psi); CI sets "
    f"{REQUIRE_FAST_PSI}=1, which turns this skip into a failure",
)
def test_fast_mode_rr22_between_the_node_processes(
    cluster: Cluster, customers: dict[str, Any], tmp_path: Path
) -> None:
    """psi-rr22: spu's RR22 in each node's sidecar, over TLS with the certificates the
    chain binds to the two nodes; the same answer as Python sets, audited, and the
    auditor says why it cannot compare RR22's own messages."""
    result, report = _run(cluster, customers, "psi-rr22", _params("intersection"),
                          ["bank-b"], tmp_path, algorithm=psi_fast.NAME)  # fmt: skip
    rows = customers["rows"]
    expected = _normalised(rows["bank-a"]) & _normalised(rows["bank-b"])
    assert result["intersection"] == sorted(expected)
    assert result["responderItems"] == [len(_normalised(rows["bank-b"]))]
    pairwise = next(c for c in report["checks"] if c["name"] == "transcripts_agree_pairwise")
    assert "spu" in pairwise["detail"] and "cannot record" in pairwise["detail"]
