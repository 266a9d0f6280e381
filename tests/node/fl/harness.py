"""Drive horizontal FedAvg rounds in one process: one thread per party on an
InMemoryNetwork, the real secure sum in between (as tests/node/test_secagg.py does)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from node.channel import Channel, InMemoryNetwork
from node.fl import horizontal
from node.fl.models import FloatArray
from tests.node.faulty_channel import FaultyChannel
from tests.node.party_keys import identity, key_ring


@dataclass
class RoundRun:
    result: horizontal.RoundResult
    vectors: dict[str, list[int]]  # each provider's unmasked contribution
    errors: dict[str, BaseException | None]
    net: InMemoryNetwork


def run_round(
    plan: horizontal.FedAvgPlan,
    round_number: int,
    params: FloatArray,
    previous: bytes,
    data: Mapping[str, tuple[FloatArray, FloatArray]],
    *,
    faults: Mapping[str, dict[str, Any]] | None = None,
    noise_seed: int | None = None,
    timeout: float = 5.0,
) -> RoundRun:
    names = list(plan.providers)
    net = InMemoryNetwork([*names, plan.aggregator])
    ring = key_ring(names)
    vectors: dict[str, list[int]] = {}
    errors: dict[str, BaseException | None] = {}

    def provider(k: int, name: str) -> None:
        channel: Channel = net.channel(name)
        if faults and name in faults:
            channel = FaultyChannel(channel, **faults[name])
        rng = None if noise_seed is None else np.random.default_rng([noise_seed, round_number, k])
        try:
            x, y = data[name]
            vectors[name] = horizontal.provide_round(
                channel,
                plan,
                round_number,
                params,
                x,
                y,
                identity(name),
                verifier=ring,
                timeout=timeout,
                noise_rng=rng,
            )
            errors[name] = None
        except BaseException as exc:
            errors[name] = exc

    threads = [
        threading.Thread(target=provider, args=(k, n), daemon=True) for k, n in enumerate(names)
    ]
    for t in threads:
        t.start()
    result = horizontal.aggregate_round(
        net.channel(plan.aggregator), plan, round_number, params, previous, ring, timeout=timeout
    )
    for t in threads:
        t.join(timeout=4 * timeout + 5)
        assert not t.is_alive(), "a provider hung"
    return RoundRun(result, vectors, errors, net)


def run_fedavg(
    plan: horizontal.FedAvgPlan,
    data: Mapping[str, tuple[FloatArray, FloatArray]],
    **kwargs: Any,
) -> list[RoundRun]:
    params = plan.initial_params()
    previous = horizontal.genesis_digest(plan)
    runs = []
    for r in range(plan.rounds):
        run = run_round(plan, r, params, previous, data, **kwargs)
        runs.append(run)
        params, previous = run.result.params, run.result.round_digest
    return runs
