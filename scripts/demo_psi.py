"""The demo's PSI job: Bank A sums Bank B's exposures over the customers both banks share.

Why it is in the demo: aligning customers and summing exposures over shared ones is
the consortium's everyday PSI question, and it exercises what statistics do not: the
requester brings its own dataset, identifiers written differently by each bank must
match after normalisation, and the value holder (Bank B) must learn nothing, not even
the sum. Bank A's customer list and Bank B's customer table are generated with the
formatting differences real exports have; the secure answer is printed beside the
same question answered with Python sets over the pooled plaintext, and the regulator's
verifier checks the run like any other task.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.service.verification import TaskVerifier
from ledger.chain import Chain
from ledger.clients.tasks import TaskState
from ledger.deployment import Deployment
from ledger.ids import hex32, name_id
from ledger.task_params import ParamsEnvelope
from node.algorithms import psi
from node.algorithms.identifiers import InvalidIdentifier, normalise

if TYPE_CHECKING:
    from scripts.local_nodes import LocalNode

Say = Callable[[str], None]

CLASSIFICATION = 2  # minimum group size 10: a sum over fewer shared customers is withheld
CUSTOMERS = 120  # per bank
SHARED = 45  # customers both banks know
PARAMS: dict[str, Any] = {
    "mode": "intersection-sum",
    "identifier_kind": "phone",
    "requester_column": "phone",
    "responder_column": "phone",
    "value_column": "exposure",
}


def _styled(number: str, rng: random.Random) -> str:
    """One mobile number as some bank's export writes it."""
    return rng.choice(
        [
            f"+86 {number[:3]} {number[3:7]} {number[7:]}",
            f"{number[:3]}-{number[3:7]}-{number[7:]}",
            f"(0086) {number}",
            number,
        ]
    )


def write_customers(
    requester: Path, responder: Path, seed: int = 14
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Bank A's customer list and Bank B's customers with exposures, as CSV files."""
    rng = random.Random(seed)
    numbers = [f"13{rng.randrange(10**9):09d}" for _ in range(3 * CUSTOMERS)]
    numbers = list(dict.fromkeys(numbers))
    shared = numbers[:SHARED]
    mine = shared + numbers[SHARED:CUSTOMERS]
    theirs = shared + numbers[CUSTOMERS : 2 * CUSTOMERS - SHARED]
    a_rows = [{"phone": _styled(n, rng)} for n in mine]
    b_rows = [
        {"phone": _styled(n, rng), "exposure": f"{rng.randrange(0, 5_000_000) / 100:.2f}"}
        for n in theirs
    ]
    for path, rows in ((requester, a_rows), (responder, b_rows)):
        header = list(rows[0])
        path.write_text(
            ",".join(header) + "\n" + "".join(",".join(r[h] for h in header) + "\n" for r in rows)
        )
    return a_rows, b_rows


def plaintext_answer(
    a_rows: Sequence[Mapping[str, str]], b_rows: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """The same question over the pooled plaintext, with Python sets: the reference."""

    def key(value: str) -> str | None:
        try:
            return normalise("phone", value)
        except InvalidIdentifier:
            return None

    mine = {k for r in a_rows if (k := key(r["phone"])) is not None}
    shared = [r for r in b_rows if key(r["phone"]) in mine]
    total = sum((Decimal(r["exposure"]) for r in shared), Decimal(0))
    return {"cardinality": len({key(r["phone"]) for r in shared}), "sum": str(total)}


def run_psi_job(
    chain: Chain,
    deployment: Deployment,
    base: Path,
    nodes: Mapping[str, LocalNode],
    digest: bytes,
    say: Say,
    wait: Callable[[Mapping[str, LocalNode], bytes, Say], TaskState],
) -> dict[str, Any]:
    """Bank A (the first bank) and Bank B (the second) run one intersection-sum with
    the approved `psi` of ``digest``; ``wait`` follows the task until the chain ends it
    and both nodes settled."""
    requester, responder = list(nodes)[:2]
    a_rows, b_rows = write_customers(base / "bank-a-customers.csv", base / "bank-b-customers.csv")
    mine = nodes[requester].node.service.register_dataset(
        "customers", base / "bank-a-customers.csv", CLASSIFICATION, identifier_columns=["phone"]
    )
    service_b = nodes[responder].node.service
    theirs = service_b.register_dataset(
        "customers", base / "bank-b-customers.csv", CLASSIFICATION, identifier_columns=["phone"]
    )
    grant = service_b.grant(
        theirs["datasetId"], hex32(name_id("org", requester)), "exposure-alignment",
        86_400, 1, hex32(digest),
    )  # fmt: skip
    say(
        f"PSI: {requester} holds {mine['rowCount']} customers, {responder} "
        f"{theirs['rowCount']} with exposures; {responder} granted one intersection-sum"
    )
    service_a = nodes[requester].node.service
    created = service_a.create_task(
        f"demo-psi-{time.time_ns()}",
        psi.NAME,
        PARAMS,
        [
            {
                "node": nodes[responder].address,
                "datasetId": theirs["datasetId"],
                "datasetVersion": theirs["version"],
                "grantId": grant["grantId"],
            }
        ],
        valid_for_seconds=3_600,
        dataset={"dataset": "customers"},
    )
    task_id = bytes.fromhex(created["taskId"][2:])
    state = wait({bank: nodes[bank] for bank in (requester, responder)}, task_id, say)
    say(f"PSI task state on chain: {state.name}")
    answer = service_a.task_result(created["taskId"]) if state == TaskState.COMPLETED else None
    secure = None if answer is None else answer["result"]
    plain = plaintext_answer(a_rows, b_rows)
    equal = secure is not None and (
        secure["cardinality"] == plain["cardinality"]
        and Decimal(secure["sum"]) == Decimal(plain["sum"])
    )
    if secure is not None:
        say(
            f"  shared customers: {secure['cardinality']} (plaintext {plain['cardinality']}); "
            f"their exposure at {responder}: {secure['sum']} (plaintext {plain['sum']})"
        )
    say(
        f"PSI result equals plaintext: {equal} "
        f"({responder} learned neither the customers nor the sum)"
    )
    params = None if answer is None else ParamsEnvelope.from_json(answer["params"])
    transcripts = {n.address: n.node.runner.evidence.entries(task_id) for n in nodes.values()}
    checks = TaskVerifier(chain, deployment).verify(task_id, params, transcripts).checks
    for c in checks:
        verdict = {"pass": "PASS", "fail": "FAIL"}.get(c.status, "n/a")
        say(f"  [{verdict}] {c.name}: {c.detail}")
    return {
        "task": hex32(task_id),
        "state": state.name,
        "algorithm": {"name": psi.NAME, "version": psi.VERSION, "digest": hex32(digest)},
        "params": PARAMS,
        "secure": secure,
        "plaintext": plain,
        "secureEqualsPlaintext": equal,
        "checks": [c.to_json() for c in checks],
        "verified": equal and all(c.passed for c in checks),
    }
