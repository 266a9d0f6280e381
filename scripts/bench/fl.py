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
  Paillier by default, obfuscators, column sums over a ``--processes`` pool) at 10^4
  and 10^5 rows x 30 features, against (a) the Paillier operation bound: the epoch's
  operations as ``vertical.py`` performs them (A's CRT obfuscations and nude
  encryptions, B's column-sum terms, packing steps and packed-mask encryptions, A's
  decryptions of the packed ciphertexts; ``paillier_costs``), counted from the plan and
  the data, times their single-op cost measured in this run, over ``--processes``; (b)
  plaintext numpy LR on the same data, schedule and fixed point (the replay: it must
  give the same model bit for bit). FATE 2.0's published hetero-LR epoch (1e5 x 330 in
  2m16s on 2 x 16 cores) is compared per core and per row x feature.
* ``scoring``: batch scoring rows/s (``node.fl.scoring``) at 10^5 rows against
  plaintext ``sigmoid(X w)`` on the same rows.
* ``scoring-task``: the whole ``fl-score`` task (``node/algorithms/fl_score.py``:
  model check against the chain facts, readiness, DH-PSI alignment on normalised phone
  numbers over a warmed ``ecdh_psi.new_executor(--processes)`` pool shared by both
  parties, partial logits in 64k-row chunks) between a label holder and one feature
  holder, threads over an ``InMemoryNetwork``, at ``--score-task-rows`` aligned ids
  (10^5 and 10^6). Each side's table (Arrow, as a node's import holds it: string ids,
  an integer and decimal(18, 4) features, rows shuffled) also holds 10% ids the other
  lacks; the model is a one-epoch vertical share each node would keep (random weights:
  the cost does not depend on them). Reported: seconds, aligned rows/s, the split into
  readiness, alignment (PSI) and scoring, bytes by phase; against what a user holding
  both tables would run: the same id normalisation, an inner join and ``sigmoid(X w +
  c)``, with pyarrow (``Table.join``) and with duckdb; scores must agree with both.

Targets are reported with ``met`` but never asserted; the load average at start and
end shows a busy machine.

    .venv/bin/python -m scripts.bench.fl [--providers 3 7] [--mask-sizes 100000 1000000]
        [--rows 10000 100000] [--key-bits 2048] [--processes 2]
        [--score-task-rows 100000 1000000] [--parts ... scoring-task] [--quick]
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

import duckdb
import numpy as np
import numpy.typing as npt
import phe  # type: ignore[import-untyped]
import pyarrow as pa
import pyarrow.compute as pc
from eth_account import Account

from ledger.rows import Column
from node.algorithms import fl_score, fl_vertical, identifiers, output_policy
from node.channel import InMemoryChannel, InMemoryNetwork, UnknownPeer
from node.crypto import ecdh_psi, masking, secagg
from node.fl import horizontal, scoring, vertical
from node.fl.fixed_point import FixedPoint
from node.fl.models import MLP, FloatArray, LocalTraining, local_update, sigmoid
from node.prior_task import PriorTask
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
    "score_task_rows": [2000],
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


def paillier_costs(
    public: Any, private: Any, columns: Sequence[Sequence[int]], packing: vertical.Packing
) -> dict[str, Any]:
    """Single-op microseconds with the epoch's own key and feature values, each op as
    ``vertical.py`` performs it (gmpy2 under phe):

    * ``crt_obfuscation``: A's r^n mod n^2 by CRT (``vertical.obfuscator_crt``);
    * ``nude_encryption``: (1 + n)^d times a precomputed obfuscator;
    * ``product``: one non-zero x_ij [[d_i]] term of B's column sums, amortised over a
      whole batch of ``vertical._column_sums`` (windowed simultaneous exponentiation,
      its tables included);
    * ``pack_column``: one column's Horner step of the packing (2^slot-power and a
      product);
    * ``obfuscation``: phe's fresh r^n mod n^2 of B's packed-mask encryption;
    * ``decryption``: A's phe decryption (CRT) of one packed ciphertext."""
    n, nsquare = public.n, public.nsquare
    batch = len(columns[0])
    residuals = [secrets.randbelow(1 << 21) - (1 << 20) for _ in range(batch)]
    obfuscator = vertical.obfuscator_crt(public.get_random_lt_n(), n, private.p, private.q)
    cts = [public.raw_encrypt(r % n, r_value=1) * obfuscator % nsquare for r in residuals]
    nonzero = max(1, sum(1 for col in columns for x in col if x))
    sums = vertical._column_sums(n, cts, columns)
    start = time.perf_counter()
    for _ in range(3):
        vertical._column_sums(n, cts, columns)
    product = (time.perf_counter() - start) / 3 / nonzero * 1e6
    power = 1 << packing.slot_bits
    return {
        "crt_obfuscation": _median_us(
            lambda k: vertical.obfuscator_crt(public.get_random_lt_n(), n, private.p, private.q),
            8,
        ),
        "nude_encryption": _median_us(
            lambda k: public.raw_encrypt(residuals[k] % n, r_value=1) * obfuscator % nsquare,
            batch,
        ),
        "product": round(product, 2),
        "pack_column": _median_us(
            lambda k: (
                phe.util.powmod(sums[k % len(sums)], power, nsquare)
                * sums[(k + 1) % len(sums)]
                % nsquare
            ),
            4 * len(sums),
        ),
        "obfuscation": _median_us(lambda k: vertical._obfuscators(n, 1), 8),
        "decryption": _median_us(lambda k: private.raw_decrypt(cts[k % batch]), 8),
    }


def operation_counts(
    plan: vertical.VerticalPlan, xb: FloatArray, packing: vertical.Packing
) -> dict[str, int]:
    """What one epoch does, from ``vertical.py``: A encrypts each row's residual once
    (a precomputed CRT obfuscator and a nude encryption); per batch B sums each column
    (one product term per non-zero feature), packs ``packing.per`` columns per
    ciphertext (a Horner step per column) and encrypts each packed mask (one
    obfuscation, whose fresh randomness re-randomises the packed sum); A decrypts each
    packed ciphertext."""
    batches = len(vertical.batches(plan)[0])
    columns = xb.shape[1]
    packed = len(packing.groups(columns))
    quantised = np.rint(xb * float(1 << plan.feature_frac_bits))
    nonzero = int(np.count_nonzero(quantised))
    return {
        "crt_obfuscation": plan.rows,
        "nude_encryption": plan.rows,
        "product": nonzero,
        "pack_column": batches * columns,
        "obfuscation": batches * packed,
        "decryption": batches * packed,
        "batches": batches,
        "packed_ciphertexts_per_batch": packed,
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
    quantised_b = [
        [int(v) for v in np.rint(xb[:, j] * float(1 << plan.feature_frac_bits))]
        for j in range(xb.shape[1])
    ]
    packing = vertical.packing_for(plan, keypair[0].n, quantised_b)
    counts = operation_counts(plan, xb, packing)
    first = vertical.batches(plan)[0][0].tolist()
    costs = paillier_costs(*keypair, [[col[i] for i in first] for col in quantised_b], packing)
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


# --- the scoring task --------------------------------------------------------------------

ID_KIND, ID_COUNTRY = "phone", "86"
LABEL_ID, FEATURE_ID = "phone", "mobile"
DECIMAL_SCALE = 4
EXTRA_IDS = 0.1  # each side also holds this share of ids (of the aligned count) the other lacks
SCORE_POLICY_LEVEL = 2  # the output policy the task runs under: minimum group size 10
TRAINING_TASK = hashlib.sha256(b"provnet-bench-fl:training").digest()
# Message steps by phase (``fl_vertical.STEP_*``, ``psi``, ``fl_score``), first match wins.
WIRE_PHASES = (
    ("psi/", "alignment_psi"),
    (fl_vertical.STEP_ALIGN, "alignment_order"),
    ("vfl-task/", "readiness"),
    ("vfl-score/", "scoring"),
)


class _SizesOnly(list[tuple[str, str, str, Any]]):
    """A ``sent`` log keeping each message's size, not its payload (the plain log holds
    every payload for the whole run: the test transport's memory, not the protocol's)."""

    def append(self, entry: tuple[str, str, str, Any]) -> None:
        sender, receiver, step, payload = entry
        super().append((sender, receiver, step, len(payload)))


class _TimedNetwork(InMemoryNetwork):
    """An ``InMemoryNetwork`` logging sizes only, and when each step was first sent."""

    def __init__(self, parties: Sequence[str]) -> None:
        super().__init__(parties)
        self.sent = _SizesOnly()
        self.first_sent: dict[tuple[str, str], float] = {}

    def channel(self, me: str) -> InMemoryChannel:
        if me not in self.parties:
            raise UnknownPeer(me)
        return _TimedChannel(self, me)


class _TimedChannel(InMemoryChannel):
    def send(self, peer: str, step: str, payload: bytes) -> None:
        network = self.network
        if isinstance(network, _TimedNetwork):
            network.first_sent.setdefault((self.name, step), time.perf_counter())
        super().send(peer, step, payload)


def _decimal_column(values: FloatArray, scale: int) -> pa.Array:
    """``values`` rounded to ``scale`` digits as decimal128(18, scale), built from the
    unscaled int64s (two's-complement 128-bit words), as a node's import stores them."""
    unscaled = np.rint(values * float(10**scale)).astype(np.int64)
    words = np.stack([unscaled, unscaled >> 63], axis=1).astype("<i8")
    return pa.Array.from_buffers(
        pa.decimal128(18, scale), len(unscaled), [None, pa.py_buffer(words.tobytes())]
    )


def _phone(numbers: npt.NDArray[np.int64], spaced: bool) -> pa.Array:
    """Mainland mobile numbers ``138xxxxxxxx``: the label holder writes ``+86 138 xxxx
    xxxx``, the feature holder ``138xxxxxxxx`` (both normalise to ``+86138xxxxxxxx``)."""
    if spaced:
        return pa.array([f"+86 138 {n // 10_000:04d} {n % 10_000:04d}" for n in numbers.tolist()])
    return pa.array([f"138{n:08d}" for n in numbers.tolist()])


def scoring_task_data(
    aligned: int, label_columns: int, seed: int
) -> tuple[dict[str, tuple[pa.Table, list[Column]]], dict[str, FloatArray], float]:
    """Each party's scoring table (its id column and model columns, rows shuffled):
    ``aligned`` shared ids plus ``EXTRA_IDS x aligned`` ids of its own; per party its
    weights, and the label holder's intercept."""
    rng = np.random.default_rng(seed)
    extra = round(aligned * EXTRA_IDS)
    total = aligned + 2 * extra
    if total > 10**8:
        raise ValueError(f"at most {10**8} distinct 138xxxxxxxx numbers, {total} asked")
    # Distinct 8-digit numbers spread over the range, in random order.
    spread = 10**8 // total
    numbers = rng.permutation(
        np.arange(total, dtype=np.int64) * spread + rng.integers(0, spread, total)
    )
    ids = {
        LABEL: numbers[: aligned + extra],
        FEATURE: np.concatenate([numbers[:aligned], numbers[aligned + extra :]]),
    }
    widths = {LABEL: label_columns, FEATURE: FEATURES - label_columns}
    prefixes = {LABEL: "a", FEATURE: "b"}
    tables: dict[str, tuple[pa.Table, list[Column]]] = {}
    weights: dict[str, FloatArray] = {}
    for party, id_column in ((LABEL, LABEL_ID), (FEATURE, FEATURE_ID)):
        mine = rng.permutation(ids[party])
        x = rng.standard_normal((len(mine), widths[party]))
        data: dict[str, pa.Array] = {id_column: _phone(mine, spaced=party == LABEL)}
        columns = [Column(id_column, "string", identifier=True)]
        for j in range(widths[party]):
            name = f"{prefixes[party]}{j}"
            if j == 0:  # one integer column (a count), the rest decimals
                data[name] = pa.array(np.rint(x[:, j] * 10).astype(np.int64))
                columns.append(Column(name, "integer"))
            else:
                data[name] = _decimal_column(x[:, j], DECIMAL_SCALE)
                columns.append(Column(name, "decimal", scale=DECIMAL_SCALE))
        tables[party] = (pa.table(data), columns)
        weights[party] = rng.standard_normal(widths[party]) / math.sqrt(FEATURES) * 2.0
    return tables, weights, 0.3


def _prior_task(
    party: str, features: Sequence[str], weights: FloatArray, intercept: float
) -> Callable[[bytes], PriorTask | None]:
    """What ``party``'s node would gather of a completed one-epoch vertical training
    (``node/prior_task.py``): its kept share and its own anchor, consistent with it."""
    genesis = hashlib.sha256(b"provnet-bench-fl:genesis:" + party.encode()).digest()
    full = np.append(weights, intercept) if party == LABEL else weights
    share = vertical.share_digest(party, full)
    link = horizontal.chain_digest(genesis, share, 0)
    kept: dict[str, Any] = {
        "features": list(features),
        "weights": [float(w) for w in weights.tolist()],
        "genesis": genesis.hex(),
        "epochs": [{"epoch": 0, "share_digest": share.hex(), "chain_digest": link.hex()}],
    }
    if party == LABEL:
        kept["intercept"] = intercept
    facts = PriorTask(
        task_id=TRAINING_TASK,
        algorithm=fl_vertical.NAME,
        state="COMPLETED",
        params_digest=bytes(32),
        participants=(LABEL, FEATURE),
        with_data=(True, True),
        record={"result" if party == LABEL else "share": kept},
        params=None,
        anchored={party.lower(): ((0, link),)},
    )
    return lambda task: facts if task == TRAINING_TASK else None


def plaintext_scoring(
    tables: Mapping[str, tuple[pa.Table, list[Column]]],
    features: Mapping[str, Sequence[str]],
    weights: FloatArray,
    intercept: float,
) -> dict[str, Any]:
    """What a user holding both tables would run instead: normalise the ids (the same
    columnar rule), inner-join, ``sigmoid(X w + c)``; by pyarrow and by duckdb."""
    started = time.perf_counter()
    sides = {}
    for party, id_column in ((LABEL, LABEL_ID), (FEATURE, FEATURE_ID)):
        table = tables[party][0]
        ids, _ = identifiers.normalise_column(ID_KIND, table[id_column], country=ID_COUNTRY)
        sides[party] = table.select(list(features[party])).append_column("id", ids)
    normalise_s = time.perf_counter() - started
    names = [*features[LABEL], *features[FEATURE]]

    start = time.perf_counter()
    joined = sides[LABEL].join(sides[FEATURE], "id", join_type="inner")
    x = np.column_stack([pc.cast(joined[name], pa.float64()).to_numpy() for name in names])
    arrow_scores = sigmoid(x @ weights + intercept)
    arrow_s = time.perf_counter() - start
    arrow = pa.table({"id": joined["id"], "plain": arrow_scores})

    terms = " + ".join(f"{name} * {float(w)!r}" for name, w in zip(names, weights, strict=True))
    con = duckdb.connect()
    start = time.perf_counter()
    con.register("a", sides[LABEL])
    con.register("b", sides[FEATURE])
    duck = con.sql(
        f"SELECT id, 1 / (1 + exp(-({terms} + {intercept!r}))) AS duck FROM a JOIN b USING (id)"
    ).to_arrow_table()
    duck_s = time.perf_counter() - start
    con.close()
    return {
        "normalise_seconds": normalise_s,
        "pyarrow_seconds": normalise_s + arrow_s,
        "duckdb_seconds": normalise_s + duck_s,
        "pyarrow": arrow,
        "duckdb": duck,
    }


def _seconds(value: float) -> float:
    return round(value, 4)


def scoring_task(
    aligned: int, label_columns: int, pool: Executor, processes: int, timeout: float
) -> dict[str, Any]:
    """The whole ``fl-score`` task between the label holder and one feature holder,
    beside the plaintext join-and-score of the same tables."""
    tables, weights, intercept = scoring_task_data(aligned, label_columns, aligned)
    features = {p: [c.name for c in tables[p][1] if c.type != "string"] for p in tables}
    params = fl_score.ScoreParams(
        training_task=TRAINING_TASK,
        identifier_kind=ID_KIND,
        requester_column=LABEL_ID,
        responder_column=FEATURE_ID,
        country=ID_COUNTRY,
    )
    policy = output_policy.effective([SCORE_POLICY_LEVEL])
    net = _TimedNetwork([LABEL, FEATURE])
    anchored: list[float] = []

    def feature() -> None:
        fl_score.run_responder(
            net.channel(FEATURE), params, *tables[FEATURE], LABEL, [FEATURE],
            timeout=timeout, policy=policy, executor=pool, processes=processes,
            training=_prior_task(FEATURE, features[FEATURE], weights[FEATURE], 0.0),
        )  # fmt: skip

    start = time.perf_counter()
    result: fl_score.ScoreResult = _threads(
        {FEATURE: feature},
        lambda: fl_score.run_requester(
            net.channel(LABEL), params, *tables[LABEL], [FEATURE],
            timeout=timeout, policy=policy, executor=pool, processes=processes,
            training=_prior_task(LABEL, features[LABEL], weights[LABEL], intercept),
            checkpoint=lambda r, _: anchored.append(time.perf_counter()),
        ),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    ready = net.first_sent[(LABEL, fl_vertical.STEP_GO)] - start
    aligned_at = anchored[0] - start

    model = np.concatenate([weights[LABEL], weights[FEATURE]])
    plain = plaintext_scoring(tables, features, model, intercept)
    ours = pa.table({"id": pa.array(result.identifiers, pa.string()), "ours": result.scores})
    diffs: dict[str, Any] = {}
    for engine, column in (("pyarrow", "plain"), ("duckdb", "duck")):
        both = ours.join(plain[engine], "id", join_type="inner")
        same_ids = both.num_rows == ours.num_rows == plain[engine].num_rows
        gap = np.abs(both["ours"].to_numpy() - both[column].to_numpy())
        diffs[engine] = float(np.max(gap)) if same_ids and len(gap) else None
    by_phase: dict[str, int] = {}
    for _, _, step, size in net.sent:
        phase = next((name for prefix, name in WIRE_PHASES if step.startswith(prefix)), "other")
        by_phase[phase] = by_phase.get(phase, 0) + int(size)
    rows = len(result.identifiers)
    baselines = {
        engine: {
            "seconds": _seconds(plain[f"{engine}_seconds"]),
            "rows_per_second": round(rows / plain[f"{engine}_seconds"]),
            "provnet_over_plaintext_seconds": ratio(seconds, plain[f"{engine}_seconds"]),
            "max_abs_diff_from_provnet": diffs[engine],
        }
        for engine in ("pyarrow", "duckdb")
    }
    return {
        "aligned_rows": rows,
        "label_holder_rows": tables[LABEL][0].num_rows,
        "feature_holder_rows": tables[FEATURE][0].num_rows,
        "psi_set_sizes": [result.requester_items, *result.responder_items],
        "features": {
            "label_holder": len(features[LABEL]),
            "feature_holder": len(features[FEATURE]),
        },
        "identifier_kind": ID_KIND,
        "processes": processes,
        "seconds": _seconds(seconds),
        "rows_per_second": round(rows / seconds),
        "seconds_by_phase": {
            "readiness": _seconds(ready),
            "alignment_psi": _seconds(aligned_at - ready),
            "scoring": _seconds(seconds - aligned_at),
        },
        "wire_bytes_by_phase": dict(sorted(by_phase.items())),
        "plaintext_normalise_seconds": _seconds(plain["normalise_seconds"]),
        "plaintext": baselines,
        "max_abs_diff_from_plaintext": diffs["pyarrow"],
        "how": "fl_score.run_requester / run_responder in two threads over an "
        "InMemoryNetwork, sharing one warmed ecdh_psi.new_executor(processes) pool; "
        "phases from the label holder's clock: readiness = model check, id "
        "normalisation and feature matrices until the go; alignment = DH-PSI and the "
        "agreed order until its first anchor; scoring = partial logits and sigmoid. "
        "Plaintext = the same normalisation, an inner join and sigmoid(X w + c).",
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
    parser.add_argument("--score-rows", type=int, default=100_000)
    parser.add_argument(
        "--score-task-rows", type=int, nargs="+", default=[100_000, 1_000_000],
        help="aligned ids per scoring-task run",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--baselines-python", default=str(BASELINES_PYTHON))
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["fedavg", "masking", "vertical", "scoring", "scoring-task"],
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.providers, args.fedavg_rows = QUICK["providers"], QUICK["fedavg_rows"]
        args.hidden, args.rounds = QUICK["hidden"], QUICK["rounds"]
        args.mask_sizes, args.rows = QUICK["mask_sizes"], QUICK["rows"]
        args.key_bits, args.score_rows = QUICK["key_bits"], QUICK["score_rows"]
        args.score_task_rows = QUICK["score_task_rows"]
        args.mask_repeats = 1
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
    if "scoring-task" in args.parts:
        with ecdh_psi.new_executor(args.processes) as psi_pool:
            key = ecdh_psi.new_key()  # start every worker (forkserver, imports) untimed
            list(psi_pool.map(ecdh_psi.hash_and_blind, [key] * 4, [[b"warm"]] * 4))
            report["scoring_task"] = [
                scoring_task(n, args.label_columns, psi_pool, args.processes, args.timeout)
                for n in args.score_task_rows
            ]
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
            "machine": machine(
                ["numpy", "phe", "gmpy2", "cryptography", "pyarrow", "duckdb", "rbcl"]
            ),
        }
    )
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
