"""TEE job benchmark (issue 17): the attested ``tee-join`` beside the same join in plaintext.

For each size n (``--n``), two owners' seeded tables of n rows each, about ``--overlap``
of the keys in common: a bank (``account`` string, unique; ``balance`` decimal, scale 2)
and a carrier (``account``; ``calls`` integer). Both sides run in this process, one after
the other, ``--repeats`` times with the repeats as the outer loop, so load that comes and
goes hits both; each figure is the median of its repeats.

* ``plaintext``: ``node.algorithms.tee.join_sums([bank, carrier], "account", ["balance",
  "calls"], min_group)`` on the tables as held. The enclave's ``compute()`` decodes each
  input and calls this same function, so the difference is the attested job's own cost.
* ``job``: the protocol of ``node.algorithms.tee`` without the transport, each phase
  timed with the ``simulated`` backend (``node.tee.simulated``):

  - ``launch``: ``SimulatedBackend.launch`` (keys generated, code measured);
  - ``attest``: per owner, a fresh nonce, ``Enclave.attest``, the report through its wire
    bytes, ``verify.verify_report`` against the trusted measurement and approved digest;
  - ``select``, ``encode``, ``seal``: per owner, ``owner_columns`` (the key and the sum
    columns it holds, checked: key unique, no missing values), ``encode_input`` (JSON
    header + Arrow IPC) and ``provision.seal_input`` (RFC 9180 HPKE to the attested key);
  - ``open``: per owner, ``Enclave.provision`` (HPKE open inside the enclave);
  - ``run``: ``Enclave.run`` (decode every input, the join, sign the output);
  - ``destroy``: ``Enclave.destroy`` (erase, sign the receipt);
  - ``notify``: the host's message to the owners (the result statement, i.e. the
    output's digest, and the receipt);
  - ``check``: per owner, ``tee.check_attested`` (both signatures under the attested
    key, its input named as used and erased: the digest of its ciphertext).

  ``provisioning`` is select + encode + seal + open (an owner's rows to plaintext in the
  enclave); the job total is the sum of every phase. Owners' phases are summed over
  both owners: on one process they run one after the other, where a deployment's owners
  would run theirs on their own machines at the same time.

The measurement the owners trust is computed before launch and not timed: in a
deployment it is read from the chain (the consortium's vote). Bytes sealed per owner
are reported; nothing goes over a network here, so no transport time is included.

The enclave's output (``json.loads(signed.output)``) must equal the plaintext output in
every repeat: the report says so in ``outputs_equal`` and the exit status is 1 if any
differs (the report is still written). Ratios are reported, never asserted; the load
average at start and end shows a busy machine.

    .venv/bin/python -m scripts.bench.tee [--n 100000 1000000] [--repeats 5]
        [--overlap 0.5] [--seed 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import secrets
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ledger.canonical import canonical_json
from ledger.rows import decimal_array
from node.algorithms import tee
from node.algorithms.package import package_of
from node.tee import provision, wire
from node.tee.report import AttestationReport
from node.tee.simulated import SIMULATED, SimulatedBackend, SimulatedVerifier, simulated_measurement
from node.tee.verify import Expectation, TrustPolicy, verify_report
from scripts.bench.machine import machine
from scripts.bench.psi_baselines.common import peak_rss_mb

REPO = Path(__file__).resolve().parents[2]
KEY = "account"
BANK, CARRIER = "bank", "carrier"
PARAMS = tee.Params(key=KEY, sum=("balance", "calls"))
MIN_GROUP = 10  # each owner's policy minimum, sealed in its input header
TASK_ID = hashlib.sha256(b"provnet-bench-tee").digest()
# Per-owner phases (summed over owners for the job) and the host's (its enclave calls).
OWNER_PHASES = ("attest", "select", "encode", "seal", "open", "check")
HOST_PHASES = ("launch", "run", "destroy", "notify")
PHASES = (
    "launch",
    "attest",
    "select",
    "encode",
    "seal",
    "open",
    "run",
    "destroy",
    "notify",
    "check",
)
PROVISIONING = ("select", "encode", "seal", "open")


# --- the tables ----------------------------------------------------------------------


def make_tables(n: int, overlap: float, seed: int) -> dict[str, pa.Table]:
    """The bank's and the carrier's rows: n each, ``round(n * overlap)`` keys shared.

    Keys are distinct 10-digit account numbers drawn at random, each table in its own
    random order, so the join does not get sorted input for free."""
    rng = np.random.default_rng(seed * 1_000_003 + n)
    shared = round(n * overlap)
    ids = rng.choice(10**10, size=2 * n - shared, replace=False)
    bank_ids, carrier_ids = ids[:n], rng.permutation(ids[n - shared :])

    def accounts(values: np.ndarray[Any, np.dtype[np.int64]]) -> pa.Array:
        return pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), 10, "0")

    balances = rng.integers(-500_000, 5_000_000_000, size=n, dtype=np.int64)  # cents
    return {
        BANK: pa.table({KEY: accounts(bank_ids), "balance": decimal_array(balances, 2)}),
        CARRIER: pa.table(
            {KEY: accounts(carrier_ids), "calls": rng.integers(0, 5000, size=n, dtype=np.int64)}
        ),
    }


def plaintext_join(tables: Mapping[str, pa.Table]) -> dict[str, Any]:
    """The baseline: the job's own join on the tables as the owners hold them."""
    return tee.join_sums([tables[BANK], tables[CARRIER]], KEY, PARAMS.sum, MIN_GROUP)


# --- one attested job ----------------------------------------------------------------


@dataclass
class JobRun:
    """One attested job: seconds per phase (per owner where the owner does it)."""

    host: dict[str, float] = field(default_factory=dict)
    owners: dict[str, dict[str, float]] = field(default_factory=dict)
    plaintext_bytes: dict[str, int] = field(default_factory=dict)
    sealed_bytes: dict[str, int] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)

    def phase(self, name: str) -> float:
        """A phase's seconds, summed over the owners for an owner's phase."""
        if name in HOST_PHASES:
            return self.host[name]
        return sum(times[name] for times in self.owners.values())


def attested_job(tables: Mapping[str, pa.Table]) -> JobRun:
    """The tee-join protocol in one process with the simulated backend, each phase timed.

    The same calls as ``run_owner``/``run_host`` in ``node.algorithms.tee``, in the same
    order, without the channel: attest every owner, then seal, open, run, destroy, check."""
    out = JobRun()
    backend = SimulatedBackend()
    verifiers = {SIMULATED: SimulatedVerifier(frozenset({backend.platform_public_key}))}
    policy = TrustPolicy(allowed_backends=frozenset({SIMULATED}))
    package = package_of(tee)
    trusted = frozenset({simulated_measurement(package)})  # from the chain: not timed

    start = time.perf_counter()
    enclave = backend.launch(TASK_ID, tee)
    out.host["launch"] = time.perf_counter() - start

    claims = {}
    for owner in tables:
        out.owners[owner] = {}
        start = time.perf_counter()
        nonce = secrets.token_bytes(32)
        sent = enclave.attest(nonce).to_bytes()
        claims[owner] = verify_report(
            AttestationReport.from_json(json.loads(sent)),
            expectation=Expectation(trusted, frozenset(), package.digest, nonce),
            policy=policy,
            verifiers=verifiers,
            now=int(time.time()),
        )
        out.owners[owner]["attest"] = time.perf_counter() - start

    sealed = {}
    for owner, table in tables.items():
        times = out.owners[owner]
        t0 = time.perf_counter()
        mine = tee.owner_columns(PARAMS, table)
        t1 = time.perf_counter()
        plaintext = tee.encode_input(tee.InputHeader(PARAMS, MIN_GROUP), mine)
        t2 = time.perf_counter()
        sealed[owner] = provision.seal_input(claims[owner], TASK_ID, owner, plaintext)
        t3 = time.perf_counter()
        times["select"], times["encode"], times["seal"] = t1 - t0, t2 - t1, t3 - t2
        out.plaintext_bytes[owner] = len(plaintext)
        out.sealed_bytes[owner] = len(sealed[owner].ciphertext)
        del mine, plaintext

    for owner in tables:
        start = time.perf_counter()
        enclave.provision(sealed[owner])
        out.owners[owner]["open"] = time.perf_counter() - start

    start = time.perf_counter()
    signed = enclave.run()
    out.host["run"] = time.perf_counter() - start
    start = time.perf_counter()
    receipt = enclave.destroy()
    out.host["destroy"] = time.perf_counter() - start

    start = time.perf_counter()
    attested = canonical_json(
        {
            "result": wire.statement_to_json(signed.statement()),
            "receipt": wire.receipt_to_json(receipt),
        }
    )
    out.host["notify"] = time.perf_counter() - start

    for owner in tables:
        start = time.perf_counter()
        tee.check_attested(claims[owner], TASK_ID, sealed[owner].digest, attested)
        out.owners[owner]["check"] = time.perf_counter() - start

    out.output = json.loads(signed.output)
    return out


# --- one size --------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 6)


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 3) if den > 0 else None


def measure_size(n: int, overlap: float, repeats: int, seed: int) -> dict[str, Any]:
    """Plaintext and attested job ``repeats`` times each, interleaved, at n rows per owner."""
    tables = make_tables(n, overlap, seed)
    plain_s: list[float] = []
    jobs: list[JobRun] = []
    equal: list[bool] = []
    reference: dict[str, Any] = {}
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        reference = plaintext_join(tables)
        plain_s.append(time.perf_counter() - start)
        gc.collect()
        job = attested_job(tables)
        jobs.append(job)
        equal.append(job.output == reference)

    plaintext = statistics.median(plain_s)
    phases = {name: _median([job.phase(name) for job in jobs]) for name in PHASES}
    total = sum(phases.values())
    provisioning = sum(phases[name] for name in PROVISIONING)
    per_owner = {
        owner: {
            **{
                f"{name}_seconds": _median([j.owners[owner][name] for j in jobs])
                for name in OWNER_PHASES
            },
            "plaintext_bytes": jobs[-1].plaintext_bytes[owner],
            "sealed_bytes": jobs[-1].sealed_bytes[owner],
            "seal_overhead_bytes": jobs[-1].sealed_bytes[owner] - jobs[-1].plaintext_bytes[owner],
        }
        for owner in tables
    }
    return {
        "n": n,
        "rows_per_owner": {owner: table.num_rows for owner, table in tables.items()},
        "shared_keys": round(n * overlap),
        "plaintext": {
            "seconds": round(plaintext, 6),
            "seconds_all": [round(s, 6) for s in plain_s],
            "what": "join_sums on the owners' tables",
        },
        "job": {
            "total_seconds": round(total, 6),
            "provisioning_seconds": round(provisioning, 6),
            "phases_seconds": phases,
            "total_seconds_all": [round(sum(j.phase(p) for p in PHASES), 6) for j in jobs],
            "per_owner": per_owner,
            "sealed_bytes_total": sum(jobs[-1].sealed_bytes.values()),
        },
        "ratios": {
            "job_over_plaintext": _ratio(total, plaintext),
            "provisioning_over_plaintext": _ratio(provisioning, plaintext),
            "run_over_plaintext": _ratio(phases["run"], plaintext),
            "attest_over_plaintext": _ratio(phases["launch"] + phases["attest"], plaintext),
        },
        "outputs_equal": all(equal),
        "outputs_equal_all": equal,
        "output": reference,
    }


# --- the report ------------------------------------------------------------------------


def command(argv: Sequence[str]) -> str:
    """The command that reruns this report, with the interpreter relative to the repo."""
    python = Path(sys.executable)
    shown = os.path.relpath(python, REPO) if python.is_relative_to(REPO) else str(python)
    return shlex.join([shown, "-m", "scripts.bench.tee", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the JSON report (and write it to ``--out``); 1 if an output differed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--overlap", type=float, default=0.5, help="shared fraction of n")
    parser.add_argument(
        "--repeats", "--repeat", type=int, default=5, help="runs of each side; medians reported"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(args_list)
    if not 0 <= args.overlap <= 1 or any(n < 1 for n in args.n) or args.repeats < 1:
        parser.error("--overlap must be in [0, 1], --n and --repeats positive")

    load_before = os.getloadavg()
    started = time.perf_counter()
    runs = [measure_size(n, args.overlap, args.repeats, args.seed) for n in args.n]
    report = {
        "benchmark": "tee",
        "issue": 17,
        "command": command(args_list),
        "algorithm": {"name": tee.NAME, "version": tee.VERSION},
        "backend": SIMULATED,
        "params": PARAMS.to_json(),
        "min_group_size": MIN_GROUP,
        "owners": {
            BANK: f"{KEY} (string, unique), balance (decimal128(18, 2))",
            CARRIER: f"{KEY} (string, unique), calls (int64)",
        },
        "sizes": args.n,
        "overlap": args.overlap,
        "repeats": args.repeats,
        "seed": args.seed,
        "definitions": {
            "job": "launch + attest + select + encode + seal + open + run + destroy + notify + "
            "check, "
            "owners' phases summed over both owners (one process, one after the other)",
            "provisioning": "select + encode + seal (owner side) + open (HPKE, in the enclave)",
            "figures": f"medians of {args.repeats} repeat(s), plaintext and job interleaved",
        },
        "runs": runs,
        "outputs_equal": all(run["outputs_equal"] for run in runs),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": peak_rss_mb(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(["pyarrow", "numpy", "cryptography"]),
    }
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    if not report["outputs_equal"]:
        print("tee bench: the enclave's output differs from the plaintext join", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
