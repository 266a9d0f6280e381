"""Horizontal FedAvg over the real secure sum (node/fl/horizontal.py), on scikit-learn's
breast-cancer data split across providers (tests/node/fl/data.py).

Hyper-parameters: logistic regression, 10 rounds x 5 full-batch local gradient steps,
learning rate 1.0, l2 = 1 / (C n_train) to match sklearn's C = 1; clip norm 10,
32 fractional bits. The MLP run is a smoke test of the same round (no accuracy claim).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from node.crypto import masking, secagg
from node.fl import horizontal
from node.fl.models import MLP, LocalTraining, LogisticRegression, local_update, model_digest
from tests.node.fl.data import accuracy, breast_cancer, horizontal_parts
from tests.node.fl.harness import RoundRun, run_fedavg, run_round

NAMES = ("p1", "p2", "p3")


def lr_plan(
    names: tuple[str, ...] = NAMES, rounds: int = 10, **kw: object
) -> horizontal.FedAvgPlan:
    split = breast_cancer()
    return horizontal.FedAvgPlan(
        LogisticRegression(30),
        names,
        "aggregator",
        LocalTraining(5, 1.0, split.l2),
        rounds=rounds,
        **kw,  # type: ignore[arg-type]
    )


def data_for(names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return dict(zip(names, horizontal_parts(breast_cancer(), len(names)), strict=True))


@cache
def secure_run() -> tuple[horizontal.FedAvgPlan, list[RoundRun]]:
    plan = lr_plan()
    return plan, run_fedavg(plan, data_for(NAMES))


def test_secure_run_equals_plain_averaging_of_the_same_fixed_point_updates() -> None:
    plan, runs = secure_run()
    data = data_for(NAMES)
    params = plan.initial_params()
    scale = 1 << plan.encoding.frac_bits
    for r, run in enumerate(runs):
        # Independently: each provider's update, clipped and encoded, summed as integers.
        vectors = [
            plan.encoding.encode_update(
                _local(plan, params, *data[name], r, name), len(data[name][1])
            )
            for name in NAMES
        ]
        assert vectors == [run.vectors[name] for name in NAMES]
        totals = [sum(column) for column in zip(*vectors, strict=True)]
        weight = totals[-1]
        assert weight == len(breast_cancer().y_train)
        mean = np.array([t / (weight * scale) for t in totals[:-1]])
        params = params + mean
        assert run.result.params.tobytes() == params.tobytes(), f"round {r} differs"
    assert runs[-1].result.model_digest == model_digest(plan.model, params)


def _local(
    plan: horizontal.FedAvgPlan, params: np.ndarray, x: np.ndarray, y: np.ndarray, r: int, name: str
) -> np.ndarray:
    return local_update(plan.model, params, x, y, plan.training, r, name)


def test_accuracy_within_one_point_of_centralised_sklearn() -> None:
    _, runs = secure_run()
    split = breast_cancer()
    params = runs[-1].result.params
    acc = accuracy(split.x_test @ params[:-1] + params[-1], split.y_test)
    print(f"horizontal FedAvg accuracy {acc:.4f}, sklearn {split.baseline_accuracy:.4f}")
    assert abs(acc - split.baseline_accuracy) <= 0.01


def _encodings(vector: list[int]) -> list[bytes]:
    """Ways an update could show up in a message: the ring encoding of the whole vector,
    of its coordinates without the public weight, and the float64 update itself."""
    ring = masking.encode_vector(masking.to_ring(vector))
    coords = masking.encode_vector(masking.to_ring(vector[:-1]))
    return [ring, coords, np.array(vector[:-1], dtype=">f8").tobytes()]


def test_no_provider_receives_another_providers_update() -> None:
    _, runs = secure_run()
    for run in runs:
        for receiver in NAMES:
            received = b"".join(p for _, dst, _, p in run.net.sent if dst == receiver)
            for owner in NAMES:
                if owner == receiver:
                    continue
                for needle in _encodings(run.vectors[owner]):
                    assert needle not in received, f"{receiver} received {owner}'s update"
        # The aggregator sees only masked inputs: no plain update there either.
        masked = b"".join(p for _, dst, step, p in run.net.sent if step == secagg.STEP_MASKED)
        for owner in NAMES:
            assert _encodings(run.vectors[owner])[0] not in masked
    # The check can fail: an unmasked vector in a message is found.
    vector = runs[0].vectors["p1"]
    assert _encodings(vector)[0] in b"header" + masking.encode_vector(masking.to_ring(vector))


def test_dropped_provider_is_recovered_as_in_secagg() -> None:
    names = ("p1", "p2", "p3", "p4")  # 4 providers: threshold 3 tolerates one dropout
    plan = lr_plan(names, rounds=1)
    data = data_for(names)
    params = plan.initial_params()
    crash = {"p3": {"crash_on_send": secagg.STEP_MASKED}}
    run = run_round(
        plan, 0, params, horizontal.genesis_digest(plan), data, faults=crash, timeout=1.5
    )
    assert run.result.contributors == ("p1", "p2", "p4")
    assert run.errors["p3"] is not None and run.errors["p1"] is None
    survivors = [run.vectors[n] for n in ("p1", "p2", "p4")]
    totals = [sum(c) for c in zip(*survivors, strict=True)]
    assert run.result.total_weight == totals[-1] == sum(len(data[n][1]) for n in ("p1", "p2", "p4"))
    expected = params + np.array([t / (totals[-1] << plan.encoding.frac_bits) for t in totals[:-1]])
    assert run.result.params.tobytes() == expected.tobytes()


def test_the_session_binds_the_global_model_so_a_stale_provider_is_stopped() -> None:
    plan = lr_plan(rounds=1)
    net_params = plan.initial_params()
    other = net_params + 1.0
    from node.channel import InMemoryNetwork

    net = InMemoryNetwork([*NAMES, plan.aggregator])
    s1 = horizontal.session_for(net.channel("p1"), plan, 0, net_params)
    s2 = horizontal.session_for(net.channel("p2"), plan, 0, other)
    assert s1.context != s2.context


def test_reproducible_digests_and_the_chain_reacts_to_any_round() -> None:
    plan, runs = secure_run()
    again = run_fedavg(plan, data_for(NAMES))
    assert [r.result.round_digest for r in again] == [r.result.round_digest for r in runs]
    assert again[-1].result.model_digest == runs[-1].result.model_digest
    # Recompute the chain from the model digests; alter one round: every later link changes.
    digests = [r.result.model_digest for r in runs]
    link = horizontal.genesis_digest(plan)
    chain = []
    for r, d in enumerate(digests):
        link = horizontal.chain_digest(link, d, r)
        chain.append(link)
    assert chain == [r.result.round_digest for r in runs]
    altered = list(digests)
    altered[3] = bytes(32)
    link = horizontal.genesis_digest(plan)
    for r, d in enumerate(altered):
        link = horizontal.chain_digest(link, d, r)
        assert (link == chain[r]) == (r < 3)
    # A different seed (MLP init) gives a different model digest; the same seed the same.
    mlp = MLP(30, 4)
    assert model_digest(mlp, mlp.init(1)) == model_digest(mlp, mlp.init(1))
    assert model_digest(mlp, mlp.init(1)) != model_digest(mlp, mlp.init(2))


def test_mlp_rounds_with_differential_privacy_record_epsilon() -> None:
    split = breast_cancer()
    plan = horizontal.FedAvgPlan(
        MLP(30, 4),
        NAMES,
        "aggregator",
        LocalTraining(2, 0.5, split.l2),
        rounds=2,
        init_seed=3,
        epsilon_per_round=0.5,
    )
    runs = run_fedavg(plan, data_for(NAMES), noise_seed=11)
    assert [r.result.epsilon for r in runs] == [0.5, 0.5]
    assert sum(r.result.epsilon or 0 for r in runs) == 1.0
    first = runs[0]
    assert first.result.total_weight == 3  # weights are 1 under DP
    # The noise is there: the published model is not the plain average of the clipped updates.
    plain = [
        plan.encoding.encode_update(
            _local(plan, plan.initial_params(), *data_for(NAMES)[n], 0, n), 1
        )
        for n in NAMES
    ]
    totals = [sum(c) for c in zip(*plain, strict=True)]
    assert totals != [sum(c) for c in zip(*first.vectors.values(), strict=True)]
    assert np.all(np.isfinite(runs[-1].result.params))


def test_an_unsafe_plan_is_refused_before_any_round() -> None:
    from node.fl.fixed_point import FixedPoint, RingOverflow

    with pytest.raises(RingOverflow):
        lr_plan(encoding=FixedPoint(frac_bits=52, clip_norm=1e9, max_weight=1 << 50))
