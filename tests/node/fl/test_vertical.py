"""Vertical logistic regression with Paillier (node/fl/vertical.py) and scoring
(node/fl/scoring.py), on the breast-cancer data split by columns.

Speed: the tests use 1024-bit Paillier keys (the plan's default is 2048); the accuracy
run is inline, one small three-party run goes over a two-worker process pool.

Hyper-parameters of the accuracy run: Taylor residual (FATE's form), 2 epochs of
mini-batches of 32 rows, learning rate 0.3, l2 = 1 / (C n_train) as sklearn's C = 1;
the label holder holds columns 0-14, the feature holder columns 15-29.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import phe  # type: ignore[import-untyped]
import pytest

from node.channel import InMemoryNetwork
from node.crypto import ecdh_psi
from node.fl import scoring, vertical
from node.fl.models import sigmoid
from tests.node.fl.data import accuracy, breast_cancer

A, B = "bank-a", "bank-b"
SPLIT_COLUMN = 15
KEY_BITS = 1024


@dataclass
class VerticalRun:
    plan: vertical.VerticalPlan
    shares: dict[str, vertical.VerticalShare]
    net: InMemoryNetwork
    columns: dict[str, np.ndarray]


def run_vertical(
    plan: vertical.VerticalPlan,
    x: np.ndarray,
    y: np.ndarray,
    columns: Mapping[str, slice],
    executor: object = None,
) -> VerticalRun:
    parties = [plan.label_holder, *plan.feature_holders]
    net = InMemoryNetwork(parties)
    shares: dict[str, vertical.VerticalShare] = {}
    errors: list[BaseException] = []

    def feature_holder(name: str) -> None:
        try:
            shares[name] = vertical.run_feature_holder(
                net.channel(name),
                plan,
                x[:, columns[name]],
                executor=executor,  # type: ignore[arg-type]
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=feature_holder, args=(n,)) for n in plan.feature_holders]
    for t in threads:
        t.start()
    shares[plan.label_holder] = vertical.run_label_holder(
        net.channel(plan.label_holder),
        plan,
        x[:, columns[plan.label_holder]],
        y,
        executor=executor,  # type: ignore[arg-type]
    )
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return VerticalRun(plan, shares, net, {n: x[:, s] for n, s in columns.items()})


@pytest.fixture(scope="module")
def trained() -> Iterator[VerticalRun]:
    split = breast_cancer()
    plan = vertical.VerticalPlan(
        A,
        (B,),
        rows=len(split.y_train),
        epochs=2,
        batch_size=32,
        learning_rate=0.3,
        l2=split.l2,
        key_bits=KEY_BITS,
    )
    yield run_vertical(
        plan,
        split.x_train,
        split.y_train,
        {A: slice(0, SPLIT_COLUMN), B: slice(SPLIT_COLUMN, 30)},
    )


def test_accuracy_within_one_point_of_centralised_sklearn(trained: VerticalRun) -> None:
    split = breast_cancer()
    wa, wb = trained.shares[A].weights, trained.shares[B].weights
    logits = split.x_test[:, :SPLIT_COLUMN] @ wa[:-1] + wa[-1] + split.x_test[:, SPLIT_COLUMN:] @ wb
    acc = accuracy(logits, split.y_test)
    print(f"vertical LR accuracy {acc:.4f}, sklearn {split.baseline_accuracy:.4f}")
    assert abs(acc - split.baseline_accuracy) <= 0.01


def _received(net: InMemoryNetwork, party: str) -> list[tuple[str, bytes]]:
    return [(step, p) for _, dst, step, p in net.sent if dst == party]


@dataclass
class Replay:
    """The label holder's side recomputed from what it received: residuals, its own
    gradients, and the feature holder's exact integer gradients."""

    residuals: list[np.ndarray]
    residual_ints: list[list[int]]
    gradients_a: list[np.ndarray]
    gradient_ints_b: list[list[int]]
    weights_a: np.ndarray


def replay(run: VerticalRun) -> Replay:
    plan, split = run.plan, breast_cancer()
    partials = {step: p for _, dst, step, p in run.net.sent if dst == A}
    xa, xb, y = run.columns[A], run.columns[B], split.y_train
    xb_int = np.rint(xb * (1 << plan.feature_frac_bits)).astype(np.int64)
    w = np.zeros(xa.shape[1] + 1)
    out = Replay([], [], [], [], w)
    for epoch, schedule in enumerate(vertical.batches(plan)):
        for b, idx in enumerate(schedule):
            u = xa[idx] @ w[:-1] + w[-1]
            u = u + np.frombuffer(partials[f"vfl/partial/{epoch}/{b}"], dtype=">f8")
            d = np.clip(0.25 * u - 0.5 * (2 * y[idx] - 1), -16, 16)
            d_int = [int(v) for v in np.rint(d * (1 << plan.residual_frac_bits))]
            dq = np.array(d_int, dtype=np.float64) / (1 << plan.residual_frac_bits)
            grad = np.empty_like(w)
            grad[:-1] = xa[idx].T @ dq / len(idx) + plan.l2 * w[:-1]
            grad[-1] = dq.mean()
            w = w - plan.learning_rate * grad
            out.residuals.append(d)
            out.residual_ints.append(d_int)
            out.gradients_a.append(grad)
            out.gradient_ints_b.append(
                [
                    sum(int(x) * v for x, v in zip(xb_int[idx, j], d_int, strict=True))
                    for j in range(xb.shape[1])
                ]
            )
    out.weights_a = w
    return out


def _int_encodings(values: list[int], widths: tuple[int, ...]) -> list[bytes]:
    out = []
    for width in widths:
        out.append(b"".join(v.to_bytes(width, "big", signed=True) for v in values))
    return out


def test_replay_matches_the_label_holders_model(trained: VerticalRun) -> None:
    assert replay(trained).weights_a.tobytes() == trained.shares[A].weights.tobytes()


def test_feature_holder_never_receives_labels_residuals_or_the_label_holders_gradient(
    trained: VerticalRun,
) -> None:
    split = breast_cancer()
    y = split.y_train
    received = _received(trained.net, B)
    assert {s.split("/")[1] for s, _ in received} == {"public-key", "residual", "opened-gradient"}
    blob = b"\x00".join(p for _, p in received)
    needles = [
        y.astype(np.uint8).tobytes(),
        y.astype(">f8").tobytes(),
        y.astype("<f8").tobytes(),
        y.astype(">i8").tobytes(),
        (2 * y - 1).astype(">f8").tobytes(),
    ]
    rep = replay(trained)
    for idx_batch, (d, d_int, g) in enumerate(
        zip(rep.residuals, rep.residual_ints, rep.gradients_a, strict=True)
    ):
        idx = [i for s in vertical.batches(trained.plan) for i in s][idx_batch]
        needles += [y[idx].astype(np.uint8).tobytes(), y[idx].astype(">f8").tobytes()]
        needles += [d.astype(">f8").tobytes(), g.astype(">f8").tobytes(), g.astype("<f8").tobytes()]
        needles += _int_encodings(d_int, (8, 16, KEY_BITS // 8))
    for needle in needles:
        assert needle not in blob
    # The check can fail: a plaintext gradient placed in a message is found.
    assert needles[-1] in b"x" + needles[-1] + b"y"


def test_label_holder_never_receives_the_feature_holders_data_or_gradient(
    trained: VerticalRun,
) -> None:
    received = _received(trained.net, A)
    assert {s.split("/")[1] for s, _ in received} == {"partial", "masked-gradient"}
    blob = b"\x00".join(p for _, p in received)
    xb = trained.columns[B]
    assert xb.astype(">f8").tobytes()[:64] not in blob
    for row in xb[:50]:
        assert row.astype(">f8").tobytes() not in blob
    rep = replay(trained)
    for g_int in rep.gradient_ints_b:
        for needle in _int_encodings(g_int, (16, KEY_BITS // 8, 2 * KEY_BITS // 8)):
            assert needle not in blob
    # The opened (masked, packed) gradients A returned hold none of B's gradients
    # either, and are packed: fewer values than columns.
    opened = [p for _, dst, s, p in trained.net.sent if dst == B and "opened" in s]
    for g_int, payload in zip(rep.gradient_ints_b, opened, strict=True):
        width = KEY_BITS // 8
        assert len(payload) % width == 0 and len(payload) // width < len(g_int)
        for needle in _int_encodings(g_int, (8, 16)):
            assert needle not in payload


def test_scoring_equals_plaintext_scoring_and_only_the_label_holder_learns_it(
    trained: VerticalRun,
) -> None:
    split = breast_cancer()
    xa, xb = split.x_test[:, :SPLIT_COLUMN], split.x_test[:, SPLIT_COLUMN:]
    net = InMemoryNetwork([A, B])
    scoring.score_feature_holder(net.channel(B), A, trained.shares[B].weights, xb)
    scores = scoring.score_label_holder(net.channel(A), (B,), trained.shares[A].weights, xa)
    wa, wb = trained.shares[A].weights, trained.shares[B].weights
    expected = sigmoid(xa @ wa[:-1] + wa[-1] + xb @ wb)
    np.testing.assert_array_equal(scores, expected)
    assert [dst for _, dst, _, _ in net.sent] == [A]  # the feature holder receives nothing


def _small_plan(seed: int, holders: tuple[str, ...] = ("b1", "b2")) -> vertical.VerticalPlan:
    split = breast_cancer()
    return vertical.VerticalPlan(
        A,
        holders,
        rows=48,
        epochs=1,
        batch_size=16,
        learning_rate=0.3,
        l2=split.l2,
        key_bits=KEY_BITS,
        shuffle_seed=seed,
    )


def _small_run(seed: int, executor: object = None) -> VerticalRun:
    split = breast_cancer()
    columns = {A: slice(0, 10), "b1": slice(10, 20), "b2": slice(20, 30)}
    return run_vertical(
        _small_plan(seed), split.x_train[:48], split.y_train[:48], columns, executor
    )


def test_two_feature_holders_match_plaintext_training_and_replay_exactly() -> None:
    pool = ecdh_psi.new_executor(2)
    try:
        first = _small_run(5, pool)  # over the process pool: same result as inline
    finally:
        pool.shutdown()
    second = _small_run(5)
    for party in (A, "b1", "b2"):
        assert first.shares[party].weights.tobytes() == second.shares[party].weights.tobytes()
        assert first.shares[party].epoch_digests == second.shares[party].epoch_digests
    other = _small_run(6)
    assert other.shares[A].epoch_digests != first.shares[A].epoch_digests
    # Plaintext mini-batch training with the Taylor residual, same schedule.
    split = breast_cancer()
    x, y = split.x_train[:48], split.y_train[:48]
    plan = first.plan
    w = np.zeros(31)
    for schedule in vertical.batches(plan):
        for idx in schedule:
            u = x[idx] @ w[:-1] + w[-1]
            d = 0.25 * u - 0.5 * (2 * y[idx] - 1)
            g = np.append(x[idx].T @ d / len(idx) + plan.l2 * w[:-1], d.mean())
            w = w - plan.learning_rate * g
    secure = np.concatenate(
        [
            first.shares[A].weights[:-1],
            first.shares["b1"].weights,
            first.shares["b2"].weights,
            first.shares[A].weights[-1:],
        ]
    )
    np.testing.assert_allclose(secure, w, atol=1e-4)


def test_a_weaker_key_than_the_plan_is_refused() -> None:
    plan = _small_plan(0, ("b1",))
    weak = phe.generate_paillier_keypair(n_length=512)
    net = InMemoryNetwork([A, "b1"])
    split = breast_cancer()
    with pytest.raises(vertical.VerticalError, match="512"):
        vertical.run_label_holder(
            net.channel(A), plan, split.x_train[:48, :10], split.y_train[:48], keypair=weak
        )
    with pytest.raises(vertical.VerticalError, match="key_bits"):
        vertical.VerticalPlan(A, ("b1",), rows=10, key_bits=512)


def test_the_exact_sigmoid_residual_matches_plaintext_training() -> None:
    split = breast_cancer()
    x, y = split.x_train[:48], split.y_train[:48]
    plan = vertical.VerticalPlan(
        A,
        ("b1",),
        rows=48,
        epochs=1,
        batch_size=16,
        learning_rate=1.0,
        l2=split.l2,
        residual="sigmoid",
        key_bits=KEY_BITS,
    )
    run = run_vertical(plan, x, y, {A: slice(0, 20), "b1": slice(20, 30)})
    w = np.zeros(31)
    for schedule in vertical.batches(plan):
        for idx in schedule:
            d = sigmoid(x[idx] @ w[:-1] + w[-1]) - y[idx]
            w = w - plan.learning_rate * np.append(
                x[idx].T @ d / len(idx) + plan.l2 * w[:-1], d.mean()
            )
    secure = np.concatenate(
        [run.shares[A].weights[:-1], run.shares["b1"].weights, run.shares[A].weights[-1:]]
    )
    np.testing.assert_allclose(secure, w, atol=1e-4)
    assert not np.allclose(secure, 0.0)


# --------------------------------------------------- the arithmetic under the protocol


@pytest.fixture(scope="module")
def keypair() -> tuple[Any, Any]:
    return phe.generate_paillier_keypair(n_length=KEY_BITS)


def test_crt_obfuscator_is_r_to_the_n_mod_n_squared(keypair: tuple[Any, Any]) -> None:
    public, private = keypair
    n = public.n
    for r in (2, 3, n - 1, public.get_random_lt_n(), public.get_random_lt_n()):
        expected = pow(r, n, n * n)
        assert vertical.obfuscator_crt(r, n, private.p, private.q) == expected
    # An encryption with one decrypts to the value, as phe's own would.
    o = vertical._obfuscators_crt(private.p, private.q, 1)[0]
    c = public.raw_encrypt(12345, r_value=1) * o % (n * n)
    assert private.raw_decrypt(c) == 12345


def test_column_sums_equal_phe_products_and_sums(keypair: tuple[Any, Any]) -> None:
    """Each column's ciphertext decrypts to sum_i x_i d_i for signed x and d, as phe's
    EncryptedNumber arithmetic computes it; a column of zeros is [[0]]."""
    public, private = keypair
    n = public.n
    rng = np.random.default_rng(5)
    d = [int(v) for v in rng.integers(-(1 << 20), 1 << 20, 32)]
    cts = [int(public.encrypt(v).ciphertext()) for v in d]
    columns = [[int(v) for v in rng.integers(-(1 << 22), 1 << 22, 32)] for _ in range(5)]
    columns.append([0] * 32)
    columns.append([0] * 31 + [-1])
    sums = vertical._column_sums(n, cts, columns)
    for column, c in zip(columns, sums, strict=True):
        expected = sum(x * v for x, v in zip(column, d, strict=True))
        opened = private.raw_decrypt(c)
        assert (opened - n if opened > n // 2 else opened) == expected
        via_phe = sum(
            (phe.EncryptedNumber(public, ct, 0) * x for ct, x in zip(cts, column, strict=True)),
            public.encrypt(0),
        )
        assert private.decrypt(via_phe) == expected


def test_packing_round_trips_signed_gradients_and_refuses_what_does_not_fit(
    keypair: tuple[Any, Any],
) -> None:
    public, private = keypair
    n = public.n
    bound = 40
    packing = vertical.Packing.for_key(n, bound, 80)
    assert packing.per == (n.bit_length() - 2) // (bound + 80 + 2) and packing.per > 1
    rng = np.random.default_rng(9)
    gradients = [int(v) for v in rng.integers(-(1 << bound) + 1, 1 << bound, 2 * packing.per + 3)]
    gradients[0], gradients[1] = -(1 << bound) + 1, (1 << bound) - 1  # the extremes
    sums = [int(public.encrypt(g).ciphertext()) for g in gradients]
    masks = [int(v) for v in rng.integers(0, 1 << 62, len(gradients))]
    packed = packing.pack(n, sums, masks, public)
    assert len(packed) == 3
    opened = [private.raw_decrypt(c) for c in packed]
    assert packing.unpack(opened, masks) == gradients
    # Every slot A opens is the gradient plus its mask and offset, nothing else.
    slot = (1 << packing.slot_bits) - 1
    assert opened[0] & slot == gradients[0] + masks[0] + (1 << bound)
    with pytest.raises(vertical.VerticalError, match="does not fit"):
        vertical.Packing.for_key(n, n.bit_length(), 80)
