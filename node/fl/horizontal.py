"""One horizontal FedAvg round over the secure sum (DESIGN §6, issue 16).

Providers hold rows with the same columns. In round r every provider starts from the
same global model P_r (its digest is bound into the secure-sum session, so a provider
holding a different model stops at the first message), trains locally, and contributes

    v_i = encode(clip(P_i - P_r), weight n_i)  [+ its share of DP noise]

(``fixed_point``) to the secure sum of ``node/crypto/secagg.py``: pairwise and self
masks, dropout recovery, signed survivor set, all as for statistics. The aggregator
learns only sum_i v_i over the survivors, decodes the weighted average update and
publishes P_{r+1} = P_r + sum_i q_i / (W * 2^f). Because the ring sum is exact, this is
bit for bit what plain averaging of the same encoded updates gives (the test checks).

Differential privacy (optional, ``epsilon_per_round``): each provider adds a share of
discrete Laplace noise (``node/crypto/dp_noise.py``, shares drawn for the threshold t)
to its encoded coordinates before masking, so nobody sees a noiseless aggregate. The
unit of privacy is one provider's whole update (add or remove a provider), with L1
sensitivity sqrt(d) * C * 2^f (``FixedPoint.l1_sensitivity``); the weights are then all
1 (plain averaging), because a sample count would change the sensitivity. Rounds
compose sequentially: the epsilon spent is the sum over rounds, recorded per round.

Audit: each round yields the new global model's digest and a chained round digest
``digest("fl-round", previous || model digest || round)``, starting from a genesis
digest of the plan and the initial model, so one altered round changes every later
link. The node anchors one link per round (TaskRegistry checkpoint).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ledger.canonical import digest, digest_json
from node.channel import DEFAULT_TIMEOUT, Channel
from node.crypto import dp_noise, masking, secagg
from node.fl.fixed_point import FixedPoint, RingOverflow, check_fits
from node.fl.models import FloatArray, LocalTraining, Model, local_update, model_digest

__all__ = [
    "NAME",
    "VERSION",
    "FedAvgPlan",
    "RoundResult",
    "aggregate_round",
    "apply_totals",
    "chain_digest",
    "contribution",
    "genesis_digest",
    "provide_round",
    "session_for",
]

NAME = "fl-horizontal"
VERSION = "0.1.0"
ROUND_KIND = "fl-round"


@dataclass(frozen=True)
class FedAvgPlan:
    """Everything every party must agree on before round 0 (the task's parameters)."""

    model: Model
    providers: tuple[str, ...]
    aggregator: str
    training: LocalTraining = field(default_factory=LocalTraining)
    encoding: FixedPoint = field(default_factory=FixedPoint)
    rounds: int = 10
    init_seed: int = 0
    threshold: int | None = None
    epsilon_per_round: float | None = None
    task_id: bytes = bytes(32)

    def __post_init__(self) -> None:
        self.encoding.check_capacity(len(self.providers))
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.epsilon_per_round is not None:
            # Validates epsilon and that the noise stays within dp_noise's exact range.
            dp_noise.NoisePlan.figure(self.epsilon_per_round, self.sensitivity())

    @property
    def vector_length(self) -> int:
        return self.model.n_params + 1

    def sensitivity(self) -> int:
        """L1 sensitivity of one weight-1 encoded update, in ring units."""
        return self.encoding.l1_sensitivity(self.model.n_params)

    def initial_params(self) -> FloatArray:
        return self.model.init(self.init_seed)

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": NAME,
            "version": VERSION,
            "model": self.model.to_json(),
            "providers": sorted(self.providers),
            "aggregator": self.aggregator,
            "training": self.training.to_json(),
            "encoding": self.encoding.to_json(),
            "rounds": self.rounds,
            "init_seed": self.init_seed,
            "threshold": self.threshold,
            "epsilon_per_round": self.epsilon_per_round,
        }


@dataclass(frozen=True)
class RoundResult:
    """What the aggregator publishes after a round (and anchors: ``round_digest``)."""

    round: int
    params: FloatArray = field(repr=False)
    model_digest: bytes
    round_digest: bytes
    contributors: tuple[str, ...]
    total_weight: int
    epsilon: float | None  # spent by this round; the run spends the sum


def genesis_digest(plan: FedAvgPlan) -> bytes:
    """The chain's anchor before round 0: the plan and the initial model."""
    initial = model_digest(plan.model, plan.initial_params())
    return digest_json(
        "fl-genesis", {"plan": plan.to_json(), "task": plan.task_id.hex(), "model": initial.hex()}
    )


def chain_digest(previous: bytes, model: bytes, round_number: int) -> bytes:
    """digest("fl-round", previous || model digest || round as 8 bytes big-endian)."""
    if len(previous) != 32 or len(model) != 32:
        raise ValueError("chain links and model digests are 32 bytes")
    return digest(ROUND_KIND, previous + model + round_number.to_bytes(8, "big"))


def session_for(
    channel: Channel, plan: FedAvgPlan, round_number: int, params: FloatArray
) -> secagg.Session:
    """The round's secure-sum session; its purpose binds the plan, the round and the
    digest of the global model this party starts from."""
    purpose = {
        "algorithm": NAME,
        "version": VERSION,
        "plan": plan.to_json(),
        "round": round_number,
        "global_model": model_digest(plan.model, params).hex(),
    }
    return secagg.session(
        channel,
        plan.providers,
        plan.aggregator,
        plan.threshold,
        plan.vector_length,
        purpose,
        plan.task_id,
    )


def contribution(
    plan: FedAvgPlan,
    round_number: int,
    params: FloatArray,
    x: FloatArray,
    y: FloatArray,
    party: str,
    threshold: int,
    noise_rng: np.random.Generator | None = None,
) -> list[int]:
    """One provider's vector for the secure sum: train, clip, encode, add noise share.

    Checked against the ring before anything is sent (``RingOverflow``)."""
    update = local_update(plan.model, params, x, y, plan.training, round_number, party)
    if plan.epsilon_per_round is None:
        vector = plan.encoding.encode_update(update, len(y))
    else:
        vector = plan.encoding.encode_update(update, 1)
        rng = noise_rng if noise_rng is not None else dp_noise.new_rng()
        shares = dp_noise.noise_shares(
            rng, plan.epsilon_per_round, plan.sensitivity(), threshold, plan.model.n_params
        )
        vector = [v + int(s) for v, s in zip(vector[:-1], shares.tolist(), strict=True)] + [1]
    check_fits(vector, len(plan.providers))
    return vector


def provide_round(
    channel: Channel,
    plan: FedAvgPlan,
    round_number: int,
    params: FloatArray,
    x: FloatArray,
    y: FloatArray,
    identity: secagg.Identity,
    *,
    verifier: secagg.SignatureVerifier | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    noise_rng: np.random.Generator | None = None,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> list[int]:
    """A provider's round: contribute its encoded update; returns the (unmasked) vector
    it contributed, for its own evidence only (it never leaves the node unmasked)."""
    s = session_for(channel, plan, round_number, params)
    vector = contribution(plan, round_number, params, x, y, channel.me, s.threshold, noise_rng)
    secagg.provide(channel, s, vector, identity, timeout, random_bytes, verifier=verifier)
    return vector


def apply_totals(plan: FedAvgPlan, params: FloatArray, totals: Sequence[int]) -> FloatArray:
    """P_{r+1} = P_r + decoded average: deterministic, so anyone holding the revealed
    totals (an auditor) recomputes the published model exactly."""
    if len(totals) != plan.vector_length:
        raise ValueError(f"{len(totals)} totals, the plan has {plan.vector_length}")
    new: FloatArray = np.asarray(params, dtype=np.float64) + plan.encoding.decode_mean(totals)
    return new


def aggregate_round(
    channel: Channel,
    plan: FedAvgPlan,
    round_number: int,
    params: FloatArray,
    previous_digest: bytes,
    verifier: secagg.SignatureVerifier,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> RoundResult:
    """The aggregator's round: collect the secure sum, decode, publish and chain."""
    s = session_for(channel, plan, round_number, params)
    total, survivors = secagg.collect(channel, s, verifier, timeout)
    totals = [masking.signed(t) for t in total]
    weight = totals[-1]
    limit = len(survivors) * (1 if plan.epsilon_per_round is not None else plan.encoding.max_weight)
    if not 1 <= weight <= limit:
        raise RingOverflow(f"total weight {weight} is impossible for {len(survivors)} survivors")
    new = apply_totals(plan, params, totals)
    new_digest = model_digest(plan.model, new)
    return RoundResult(
        round=round_number,
        params=new,
        model_digest=new_digest,
        round_digest=chain_digest(previous_digest, new_digest, round_number),
        contributors=tuple(s.providers[k] for k in survivors),
        total_weight=weight,
        epsilon=plan.epsilon_per_round,
    )
