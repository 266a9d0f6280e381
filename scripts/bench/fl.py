"""Federated-learning benchmark (issue 16): each figure beside its baseline, same run.

One JSON report on stdout:

* ``fedavg``: one horizontal FedAvg round (``node.fl.horizontal``: local training, clip,
  fixed-point encoding, the real secure sum of ``node/crypto/secagg.py`` with signed
  survivor set) for 3 and 7 providers, each party a thread over an ``InMemoryNetwork``,
  against plain averaging of the same updates (the same local training, then
  ``np.average`` weighted by sample counts). The secure model must equal, bit for bit,
  the initial model plus the decoded plain sum of the same encoded updates.
* ``masking``: one provider's masking at 10^5 and 10^6 parameters with 10 neighbours:
  fixed-point encoding, 10 X25519 agreements + HKDF seeds, the self-mask seed, the
  ChaCha20 expansion and ring additions (``masking.mask_limbs``, as ``secagg.provide``
  runs them), and the wire encoding;
  beside flwr's SecAgg+ client masking on the same float vector
  (``scripts/bench/fl_baselines/secaggplus.py`` under ``.venv-fl-baselines``, ``make
  bench-fl-baselines``; ``{"skipped": ...}`` where that venv is missing).
* ``vertical``: one epoch of vertical LR (``node.fl.vertical``; label holder with the
  first ``--label-columns`` columns, one feature holder with the rest, 2048-bit
  Paillier by default, products and obfuscators over a ``--processes`` pool) at 10^4
  and 10^5 rows x 30 features, against (a) the Paillier operation bound: the epoch's
  obfuscations (r^n mod n^2), nude encryptions, plaintext-ciphertext products,
  ciphertext additions and decryptions, counted from the plan and the data, times their
  single-op cost measured in this run, over ``--processes``; (b) plaintext numpy LR on
  the same data, schedule and fixed point (the replay: it must give the same model
  bit for bit). FATE 2.0's published hetero-LR epoch (1e5 x 330 in 2m16s on 2 x 16
  cores) is compared per core and per row x feature.
* ``scoring``: batch scoring rows/s (``node.fl.scoring``) at 10^5 rows against
  plaintext ``sigmoid(X w)`` on the same rows.

Targets are reported with ``met`` but never asserted; the load average at start and
end shows a busy machine.

    .venv/bin/python -m scripts.bench.fl [--providers 3 7] [--mask-sizes 100000 1000000]
        [--rows 10000 100000] [--key-bits 2048] [--processes 2] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import resource
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import phe  # type: ignore[import-untyped]
from eth_account import Account

from node.channel import InMemoryNetwork
from node.crypto import ecdh_psi, masking, secagg
from node.fl import horizontal, scoring, vertical
from node.fl.fixed_point import FixedPoint
from node.fl.models import MLP, FloatArray, LocalTraining, local_update, sigmoid
from scripts.bench.machine import machine

REPO = Path(__file__).resolve().parents[2]
BASELINES_PYTHON = REPO / ".venv-fl-baselines" / "bin" / "python"
SKIPPED = {"skipped": "run `make bench-fl-baselines` first"}
FLWR_MODULE = "scripts.bench.fl_baselines.secaggplus"
FLWR_MEASURED_MS = 108.0  # issue 16: flwr SecAgg+ per client, 10^6 floats, 10 neighbours
QUICK: dict[str, Any] = {
    "providers": [3],
    "fedavg_rows": 200,
    "hidden": 4,
    "rounds": 1,
    "mask_sizes": [10_000],
    "rows": [256],
    "key_bits": 1024,
    "score_rows": 5000,
    "op_batch": 3,
}
FEATURES = 30
# FATE 2.0 hetero-LR, published: 1e5 rows x 330 features, 2m16s per epoch, 2 x 16 cores.
FATE = {"rows": 100_000, "features": 330, "seconds": 136.0, "cores": 32}
AGGREGATOR = "aggregator"
LABEL, FEATURE = "label-holder", "feature-holder"


# --- shared helpers ----------------------------------------------------------------------


def synthetic(rows: int, features: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Standard-normal features and labels drawn from a logistic model (seeded)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features))
    w = rng.standard_normal(features) / math.sqrt(features) * 2.0
    y = (rng.random(rows) < sigmoid(x @ w + 0.3)).astype(np.float64)
    return x, y


def ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num is not None and den else None


def target(value: float | None, sense: str, bound: float, of: str) -> dict[str, Any]:
    met = None if value is None else (value <= bound if sense == "<=" else value >= bound)
    return {"value": value, "of": of, "target": f"{sense} {bound:g}", "met": met}


def _account(name: str) -> Any:
    return Account.from_key(hashlib.sha256(b"provnet-bench-fl:" + name.encode()).digest())


def _threads(work: Mapping[str, Callable[[], Any]], main: Callable[[], Any]) -> Any:
    """Run each ``work`` item in a thread and ``main`` here; re-raise the first error."""
    errors: dict[str, BaseException] = {}

    def guarded(name: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:
            errors[name] = exc

    threads = [
        threading.Thread(target=guarded, args=(name, call), name=name, daemon=True)
        for name, call in work.items()
    ]
    for thread in threads:
        thread.start()
    try:
        result = main()
    finally:
        for thread in threads:
            thread.join()
    if errors:
        name, exc = next(iter(errors.items()))
        raise RuntimeError(f"{name} failed: {exc!r}") from exc
    return result


# --- FedAvg round ------------------------------------------------------------------------


def _secure_round(
    plan: horizontal.FedAvgPlan,
    r: int,
    params: FloatArray,
    previous: bytes,
    data: Mapping[str, tuple[FloatArray, FloatArray]],
    identities: Mapping[str, secagg.Identity],
    ring: secagg.KeyRingVerifier,
) -> tuple[horizontal.RoundResult, dict[str, list[int]]]:
    """One round: each provider in a thread, the aggregator here; and what each sent."""
    net = InMemoryNetwork([*plan.providers, AGGREGATOR])
    vectors: dict[str, list[int]] = {}

    def provider(name: str) -> None:
        x, y = data[name]
        vectors[name] = horizontal.provide_round(
            net.channel(name), plan, r, params, x, y, identities[name], verifier=ring
        )

    result: horizontal.RoundResult = _threads(
        {n: functools.partial(provider, n) for n in plan.providers},
        lambda: horizontal.aggregate_round(
            net.channel(AGGREGATOR), plan, r, params, previous, ring
        ),
    )
    return result, vectors


def fedavg(providers: int, rows: int, hidden: int, rounds: int) -> dict[str, Any]:
    """``rounds`` secure rounds and, per round, the plain average of the same updates."""
    names = tuple(f"provider-{k}" for k in range(providers))
    model = MLP(FEATURES, hidden)
    plan = horizontal.FedAvgPlan(
        model=model,
        providers=names,
        aggregator=AGGREGATOR,
        training=LocalTraining(steps_or_epochs=5, learning_rate=0.5, l2=1e-3),
        rounds=rounds,
        init_seed=1,
    )
    data = {name: synthetic(rows, FEATURES, 100 + k) for k, name in enumerate(names)}
    ring = secagg.KeyRingVerifier({n: _account(n).address for n in names})
    identities = {n: secagg.Identity(_account(n)) for n in names}
    params = plan.initial_params()
    previous = horizontal.genesis_digest(plan)
    secure_s: list[float] = []
    plain_s: list[float] = []
    all_equal, max_float_diff = True, 0.0
    for r in range(rounds):
        start = time.perf_counter()
        result, vectors = _secure_round(plan, r, params, previous, data, identities, ring)
        secure_s.append(time.perf_counter() - start)
        # Plain averaging of the same updates: the same local training, then a weighted mean.
        start = time.perf_counter()
        updates = [
            local_update(model, params, data[n][0], data[n][1], plan.training, r, n) for n in names
        ]
        plain = params + np.average(updates, axis=0, weights=[len(data[n][1]) for n in names])
        plain_s.append(time.perf_counter() - start)
        # The secure sum must equal the plain sum of the same encoded updates, exactly.
        totals = [sum(column) for column in zip(*(vectors[n] for n in names), strict=True)]
        exact = horizontal.apply_totals(plan, params, totals)
        all_equal = all_equal and exact.tobytes() == result.params.tobytes()
        max_float_diff = max(max_float_diff, float(np.max(np.abs(plain - result.params))))
        params, previous = result.params, result.round_digest
    secure, plain_med = statistics.median(secure_s), statistics.median(plain_s)
    return {
        "providers": providers,
        "parameters": model.n_params,
        "model": model.to_json(),
        "rows_per_provider": rows,
        "rounds": rounds,
        "secure_round_seconds": round(secure, 4),
        "secure_round_seconds_all": [round(s, 4) for s in secure_s],
        "plain_round_seconds": round(plain_med, 5),
        "secure_over_plain": ratio(secure, plain_med),
        "equals_plain_sum_of_encoded_updates": all_equal,
        "max_abs_diff_from_float_average": max_float_diff,
        "how": "one thread per party on an InMemoryNetwork; secure = provide_round x n + "
        "aggregate_round; plain = the same local_update x n + np.average weighted by rows",
    }


# --- per-client masking -------------------------------------------------------------------


def provnet_masking(vector: FloatArray, neighbours: int, repeats: int) -> dict[str, Any]:
    """One provider's share of a round's masking work at ``len(vector)`` parameters."""
    encoding = FixedPoint()
    context = secrets.token_bytes(masking.CONTEXT_BYTES)
    names = [f"p{k}" for k in range(neighbours + 1)]
    me = neighbours // 2
    private = secrets.token_bytes(masking.KEY_BYTES)
    publics = {
        k: masking.public_key(secrets.token_bytes(masking.KEY_BYTES))
        for k in range(len(names))
        if k != me
    }
    self_seed = secrets.token_bytes(masking.KEY_BYTES)
    parts: dict[str, list[float]] = {"encode": [], "seeds": [], "mask": [], "wire": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        encoded = encoding.encode_update(vector, 100)
        t1 = time.perf_counter()
        pairwise = [
            (
                masking.pairwise_sign(me, k),
                masking.pairwise_seed(private, pub, context, names[me], names[k]),
            )
            for k, pub in publics.items()
        ]
        self_key = masking.self_mask_seed(self_seed, context, names[me])
        t2 = time.perf_counter()
        # What `secagg.provide` runs: the masked vector stays in numpy limbs to the wire.
        masked = masking.mask_limbs(encoded, self_key, pairwise)
        t3 = time.perf_counter()
        wire = masking.encode_limbs(masked)
        t4 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[name].append(seconds)
        del masked, wire, encoded
    med = {name: statistics.median(values) for name, values in parts.items()}
    total = med["encode"] + med["seeds"] + med["mask"]
    return {
        "seconds": round(total, 5),
        "seconds_with_wire_encoding": round(total + med["wire"], 5),
        "seconds_by_part": {name: round(v, 5) for name, v in med.items()},
        "ring": "Z_{2^128}",
        "mask_generator": "ChaCha20 (cryptography), keyed by HKDF-SHA256 of X25519",
        "repeats": repeats,
    }


def flwr_masking(
    vector_file: Path, neighbours: int, repeats: int, python: Path, timeout: float
) -> dict[str, Any]:
    if not python.exists():
        return dict(SKIPPED)
    command = [str(python), "-m", FLWR_MODULE, "--vector", str(vector_file)]
    command += ["--neighbours", str(neighbours), "--repeats", str(repeats)]
    try:
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr[-2000:]}"}
    try:
        parsed: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"no JSON report: {lines[-1][-500:]!r}"}
    return parsed


def masking_size(size: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    vector = np.random.default_rng(size).standard_normal(size) * 1e-3
    path = workdir / f"vector-{size}.npy"
    np.save(path, vector)
    mine = provnet_masking(vector, args.neighbours, args.mask_repeats)
    theirs = flwr_masking(
        path, args.neighbours, args.mask_repeats, Path(args.baselines_python), args.timeout
    )
    flwr_s = theirs.get("seconds") if isinstance(theirs.get("seconds"), float) else None
    value = ratio(mine["seconds"], flwr_s)
    return {
        "parameters": size,
        "neighbours": args.neighbours,
        "provnet": mine,
        "flwr_secaggplus": theirs,
        "ratios": {
            "provnet_over_flwr": target(value, "<=", 1.0, "provnet / flwr SecAgg+ (seconds)"),
            "provnet_over_flwr_issue_figure": {
                "value": ratio(mine["seconds"], FLWR_MEASURED_MS / 1000) if size == 10**6 else None,
                "of": "provnet / 108 ms (flwr SecAgg+ at 10^6, measured for issue 16)",
            },
        },
        "same_vector": str(path.name),
    }


# --- vertical LR ------------------------------------------------------------------------


def _median_us(op: Callable[[int], object], count: int, rounds: int = 3) -> float:
    """Median over ``rounds`` of the mean time of ``count`` calls ``op(k)``, in us."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for k in range(count):
            op(k)
        samples.append((time.perf_counter() - start) / count * 1e6)
    return round(statistics.median(samples), 2)


def paillier_costs(public: Any, private: Any, sample: Sequence[int], batch: int) -> dict[str, Any]:
    """Single-op microseconds with the epoch's own key and feature values (phe + gmpy2)."""
    n, nsquare = public.n, public.nsquare
    obfuscators = vertical._obfuscators(n, 1)
    residuals = [secrets.randbelow(1 << 21) - (1 << 20) for _ in range(batch)]
    cts = [phe.EncryptedNumber(public, public.raw_encrypt(r % n, r_value=1)) for r in residuals]
    plain = [x for x in sample if x] or [1]
    costs = {
        # The costly half of an encryption (precomputed by the pool for A's residuals,
        # done inline by B's mask encryption).
        "obfuscation": _median_us(lambda k: vertical._obfuscators(n, 1), batch),
        "nude_encryption": _median_us(
            lambda k: public.raw_encrypt(residuals[k] % n, r_value=1) * obfuscators[0] % nsquare,
            batch,
        ),
        "product": _median_us(lambda k: cts[k % batch] * plain[k % len(plain)], 4 * batch),
        "addition": _median_us(lambda k: cts[k % batch] + cts[(k + 1) % batch], 4 * batch),
        "decryption": _median_us(
            lambda k: private.raw_decrypt(cts[k % batch].ciphertext(be_secure=False)), batch
        ),
    }
    return costs


def operation_counts(plan: vertical.VerticalPlan, xb: FloatArray) -> dict[str, int]:
    """What one epoch does, from ``vertical.py``: A encrypts each row's residual once
    (a precomputed obfuscator and a nude encryption); per batch and B column, B encrypts
    its mask (one obfuscation; that fresh randomness already re-randomises the sum) and
    multiplies and adds each non-zero feature; A decrypts it."""
    batches = len(vertical.batches(plan)[0])
    columns = xb.shape[1]
    quantised = np.rint(xb * float(1 << plan.feature_frac_bits))
    nonzero = int(np.count_nonzero(quantised))
    return {
        "obfuscation": plan.rows + batches * columns,
        "nude_encryption": plan.rows,
        "product": nonzero,
        "addition": nonzero,
        "decryption": batches * columns,
        "batches": batches,
    }


def replay_epoch(
    plan: vertical.VerticalPlan, xa: FloatArray, xb: FloatArray, y: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Plaintext numpy LR with the protocol's schedule, residual and fixed point: the
    model both parties must reach (A: columns then intercept; B: its columns)."""
    fd, fx = 1 << plan.residual_frac_bits, 1 << plan.feature_frac_bits
    xb_int = np.rint(xb * float(fx)).astype(np.int64)
    wa, wb = np.zeros(xa.shape[1] + 1), np.zeros(xb.shape[1])
    for idx in vertical.batches(plan)[0]:
        m = len(idx)
        u = xa[idx] @ wa[:-1] + wa[-1]
        u = u + xb[idx] @ wb
        d = np.clip(0.25 * u - 0.5 * (2.0 * y[idx] - 1.0), -16.0, 16.0)
        d_int = np.rint(d * float(fd)).astype(np.int64)
        dq = d_int.astype(np.float64) / float(fd)
        grad = np.empty_like(wa)
        grad[:-1] = xa[idx].T @ dq / m + plan.l2 * wa[:-1]
        grad[-1] = dq.mean()
        wa = wa - plan.learning_rate * grad
        gb = (xb_int[idx].T @ d_int).astype(np.float64) / (float(fd * fx) * m) + plan.l2 * wb
        wb = wb - plan.learning_rate * gb
    return wa, wb


def vertical_size(
    rows: int,
    args: argparse.Namespace,
    keypair: tuple[Any, Any],
    pool: Executor,
) -> tuple[dict[str, Any], dict[str, Any]]:
    x, y = synthetic(rows, FEATURES, rows)
    xa, xb = x[:, : args.label_columns], x[:, args.label_columns :]
    plan = vertical.VerticalPlan(
        LABEL, (FEATURE,), rows=rows, epochs=1, key_bits=args.key_bits, shuffle_seed=3
    )
    net = InMemoryNetwork([LABEL, FEATURE])
    shares: dict[str, vertical.VerticalShare] = {}

    def feature() -> None:
        shares[FEATURE] = vertical.run_feature_holder(
            net.channel(FEATURE), plan, xb, executor=pool, timeout=args.timeout
        )

    start = time.perf_counter()
    shares[LABEL] = _threads(
        {FEATURE: feature},
        lambda: vertical.run_label_holder(
            net.channel(LABEL), plan, xa, y, executor=pool, timeout=args.timeout, keypair=keypair
        ),
    )
    epoch = time.perf_counter() - start
    start = time.perf_counter()
    wa, wb = replay_epoch(plan, xa, xb, y)
    plain = time.perf_counter() - start
    counts = operation_counts(plan, xb)
    sample = np.rint(xb[:64].ravel() * float(1 << plan.feature_frac_bits)).astype(int).tolist()
    costs = paillier_costs(*keypair, sample, args.op_batch)
    bound = sum(counts[op] * costs[op] for op in costs) / 1e6 / args.processes
    cells = rows * FEATURES
    ours_core_us = epoch * args.processes / cells * 1e6
    fate_core_us = FATE["seconds"] * FATE["cores"] / (FATE["rows"] * FATE["features"]) * 1e6
    score = shares[LABEL].weights
    accuracy = float(
        np.mean(((xa @ score[:-1] + score[-1] + xb @ shares[FEATURE].weights) > 0) == y)
    )
    report = {
        "rows": rows,
        "features": FEATURES,
        "label_holder_columns": xa.shape[1],
        "feature_holder_columns": xb.shape[1],
        "key_bits": args.key_bits,
        "batch_size": plan.batch_size,
        "processes": args.processes,
        "epoch_seconds": round(epoch, 3),
        "plaintext_numpy_epoch_seconds": round(plain, 5),
        "operation_counts": counts,
        "single_op_us": costs,
        "operation_bound_seconds": round(bound, 3),
        "bound_formula": "sum(count x single-op us) / processes",
        "equals_replay": bool(
            wa.tobytes() == shares[LABEL].weights.tobytes()
            and wb.tobytes() == shares[FEATURE].weights.tobytes()
        ),
        "train_accuracy_after_epoch": round(accuracy, 4),
        "core_us_per_row_feature": round(ours_core_us, 2),
        "fate_core_us_per_row_feature": round(fate_core_us, 2),
        "ratios": {
            "epoch_over_operation_bound": target(
                ratio(epoch, bound), "<=", 2.0, "epoch / Paillier operation bound (seconds)"
            ),
            "epoch_over_plaintext": {
                "value": ratio(epoch, plain),
                "of": "epoch / plaintext numpy LR epoch (seconds)",
            },
            "fate_over_provnet_per_core": target(
                ratio(fate_core_us, ours_core_us),
                ">=",
                1.0,
                "FATE 2.0 core-us per row x feature / provnet's (> 1: provnet faster per core)",
            ),
        },
    }
    return report, {"plan": plan, LABEL: shares[LABEL], FEATURE: shares[FEATURE]}


# --- scoring ---------------------------------------------------------------------------


def scoring_bench(trained: Mapping[str, Any], rows: int, label_columns: int) -> dict[str, Any]:
    x, _ = synthetic(rows, FEATURES, 99)
    xa, xb = x[:, :label_columns], x[:, label_columns:]
    a, b = trained[LABEL], trained[FEATURE]
    net = InMemoryNetwork([LABEL, FEATURE])
    start = time.perf_counter()
    scores = _threads(
        {FEATURE: lambda: scoring.score_feature_holder(net.channel(FEATURE), LABEL, b.weights, xb)},
        lambda: scoring.score_label_holder(net.channel(LABEL), (FEATURE,), a.weights, xa),
    )
    seconds = time.perf_counter() - start
    weights = np.concatenate([a.weights[:-1], b.weights])
    start = time.perf_counter()
    plain = sigmoid(x @ weights + a.weights[-1])
    plain_s = time.perf_counter() - start
    return {
        "rows": rows,
        "seconds": round(seconds, 5),
        "rows_per_second": round(rows / seconds),
        "plaintext_seconds": round(plain_s, 5),
        "plaintext_rows_per_second": round(rows / plain_s) if plain_s else None,
        "provnet_over_plaintext_seconds": ratio(seconds, plain_s),
        "max_abs_diff_from_plaintext": float(np.max(np.abs(scores - plain))),
    }


# --- orchestration ---------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--fedavg-rows", type=int, default=2000, help="rows per provider")
    parser.add_argument("--hidden", type=int, default=32, help="MLP hidden units (FedAvg)")
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds; median")
    parser.add_argument("--mask-sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--neighbours", type=int, default=10)
    parser.add_argument("--mask-repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--label-columns", type=int, default=10)
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--op-batch", type=int, default=20, help="ops per single-op sample")
    parser.add_argument("--score-rows", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--baselines-python", default=str(BASELINES_PYTHON))
    parser.add_argument("--parts", nargs="+", default=["fedavg", "masking", "vertical", "scoring"])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.providers, args.fedavg_rows = QUICK["providers"], QUICK["fedavg_rows"]
        args.hidden, args.rounds = QUICK["hidden"], QUICK["rounds"]
        args.mask_sizes, args.rows = QUICK["mask_sizes"], QUICK["rows"]
        args.key_bits, args.score_rows = QUICK["key_bits"], QUICK["score_rows"]
        args.op_batch, args.mask_repeats = QUICK["op_batch"], 1
    if "scoring" in args.parts and "vertical" not in args.parts:
        parser.error("scoring uses the vertical model: keep 'vertical' in --parts")
    load_before = os.getloadavg()
    started = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "fl", "issue": 16, "quick": args.quick}
    if "fedavg" in args.parts:
        report["fedavg"] = [
            fedavg(n, args.fedavg_rows, args.hidden, args.rounds) for n in args.providers
        ]
    if "masking" in args.parts:
        with tempfile.TemporaryDirectory(prefix="provnet-fl-bench-") as tmp:
            report["masking"] = [masking_size(d, args, Path(tmp)) for d in args.mask_sizes]
    if "vertical" in args.parts:
        keypair = phe.generate_paillier_keypair(n_length=args.key_bits)
        pool = ecdh_psi.new_executor(args.processes)
        try:
            # Start every worker (imports, gmpy2) before anything is timed.
            n = keypair[0].n
            list(pool.map(vertical._obfuscators, [n] * args.processes, [1] * args.processes))
            runs = [vertical_size(rows, args, keypair, pool) for rows in args.rows]
        finally:
            pool.shutdown()
        report["vertical"] = [fig for fig, _ in runs]
        if "scoring" in args.parts:
            report["scoring"] = scoring_bench(runs[0][1], args.score_rows, args.label_columns)
    report.update(
        {
            "fate_hetero_lr_published": FATE,
            "flwr_issue_figure_ms": FLWR_MEASURED_MS,
            "baselines_venv": str(args.baselines_python)
            if Path(args.baselines_python).exists()
            else None,
            "seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
            "machine": machine(["numpy", "phe", "gmpy2", "cryptography"]),
        }
    )
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
