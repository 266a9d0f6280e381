"""Horizontal federated averaging as an approved algorithm the task runner runs.

Providers hold rows with the same columns (the task's ``columns``, checked against each
provider's registered schema by the runner); the aggregator is the consumer's node and
holds no data. Every round r (``node/fl/horizontal.py``):

1. each provider trains locally from the global model P_r (``local_steps`` full-batch
   gradient steps on its own rows, or seeded mini-batches with ``batch_size``), clips
   the update to ``clip_norm``, encodes it in fixed point weighted by its row count and
   contributes it to the secure sum (``horizontal.provide_round``);
2. the aggregator collects the sum (``horizontal.aggregate_round``: dropout recovery and
   the signed survivor set of ``node/crypto/secagg.py``), publishes P_{r+1} and chains
   its digest; with ``checkpoint`` (passed by the runner) it anchors each round's link
   on chain (``TaskRegistry.anchorCheckpoint(task, r, link_r)``);
3. unless it was the last round, the aggregator sends P_{r+1} to every provider
   (step ``fl-model/<r>``), which checks its shape and finiteness and starts round r+1.

Each round runs the secure sum under its own step names (``round-<r>/<secagg step>``),
so one round's messages (including late ones a threshold left unread) can never be taken
for another's; the session purpose binds the plan, the round and P_r's digest besides.

The result (the consumer's, committed by the runner like every aggregate) is the final
model, its digest, every round's model digest and chained digest, and the chain head:
the last link, which is what a checkpoint anchors last. Providers receive no result, but
they do receive the intermediate global models P_1..P_{R-1}: inherent to FedAvg.

Output policy: the model is a disclosure to the consumer, so the providers enforce the
same rules as for statistics (``OUTPUT_POLICY``): independent provider organisations,
a minimum row count (the minimum group size) per provider, the query history limit, and,
where the datasets' classification level calls for differential privacy, distributed
discrete-Laplace noise inside the secure sum: the task's epsilon is split evenly over
the rounds (basic composition), each round's noise drawn for the plan's threshold; the
unit of privacy is then one provider's whole update, with sample weights all 1.

Threat model and limits: the secure sum's (semi-honest providers for the model's
quality: a provider can poison the model with a bad but clipped update; the clipping
bounds its influence to ``clip_norm`` per round). The aggregator learns the sum of
updates each round, and so does any provider from two successive global models.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import Column, decimal_unscaled
from node.algorithms.output_policy import EffectivePolicy
from node.algorithms.param_fields import (
    INT_LIMIT,
    integer,
    is_int,
    json_object,
    min_group_size,
    number,
)
from node.algorithms.task_columns import MAX_COLUMNS, InvalidParams, column_json, parse_columns
from node.channel import DEFAULT_TIMEOUT, Channel, ForwardingChannel
from node.crypto import dp_noise, secagg, shamir
from node.fl import horizontal
from node.fl.fixed_point import FixedPoint
from node.fl.models import MLP, FloatArray, LocalTraining, LogisticRegression, Model, model_digest

NAME = "fl-horizontal"
VERSION = "0.1.0"
KIND = AlgorithmKind.FL
# The model is disclosed to the task's creator: providers enforce the output policy.
OUTPUT_POLICY = True
# run_aggregator takes ``checkpoint`` (round, digest): the runner anchors each round.
CHECKPOINTS = True

_NODE_DIR = Path(__file__).resolve().parent.parent
EXTRA_SOURCES: tuple[str, ...] = (
    str(_NODE_DIR / "fl" / "horizontal.py"),
    str(_NODE_DIR / "fl" / "models.py"),
    str(_NODE_DIR / "fl" / "fixed_point.py"),
    str(_NODE_DIR / "crypto" / "masking.py"),
    str(_NODE_DIR / "crypto" / "shamir.py"),
    str(_NODE_DIR / "crypto" / "secagg.py"),
    str(_NODE_DIR / "crypto" / "dp_noise.py"),
    str(Path(__file__).resolve().parent / "output_policy.py"),
    str(Path(__file__).resolve().parent / "disclosure.py"),
    str(Path(__file__).resolve().parent / "columnar.py"),
    str(Path(__file__).resolve().parent / "task_columns.py"),
    str(Path(__file__).resolve().parent / "param_fields.py"),
)

MODELS = ("logistic-regression", "mlp")
MAX_ROUNDS = 1000
MAX_LOCAL_STEPS = 10_000
MAX_HIDDEN = 1024
MAX_PROVIDERS = shamir.MAX_SHARES
STEP_MODEL = "fl-model"

PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fl-horizontal parameters",
    "type": "object",
    "required": ["columns", "features", "label"],
    "additionalProperties": False,
    "properties": {
        "columns": {
            "description": "The dataset schema, as in the registered schema digest "
            "(name, type, scale of a decimal column, identifier mark).",
            "type": "array",
        },
        "features": {
            "description": "Integer or decimal columns the model reads, in this order.",
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
        },
        "label": {"description": "Integer column of 0/1 labels.", "type": "string"},
        "model": {"enum": list(MODELS)},
        "hidden": {"description": "Hidden units (mlp only).", "type": "integer"},
        "rounds": {"type": "integer", "minimum": 1, "maximum": MAX_ROUNDS},
        "local_steps": {"type": "integer", "minimum": 1, "maximum": MAX_LOCAL_STEPS},
        "batch_size": {"description": "None: full batch.", "type": ["integer", "null"]},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "l2": {"type": "number", "minimum": 0},
        "clip_norm": {"type": "number", "exclusiveMinimum": 0},
        "seed": {
            "description": "Initial model and mini-batch order.",
            "type": "integer",
            "minimum": 0,
            "maximum": INT_LIMIT,
        },
        "min_group_size": {
            "description": "Raise the policy's minimum rows per provider.",
            "type": ["integer", "null"],
        },
        "epsilon": {
            "description": "Differential privacy for the whole run (split over rounds).",
            "type": ["number", "null"],
        },
        "threshold": {"type": ["integer", "null"], "minimum": 2, "maximum": MAX_PROVIDERS},
    },
}
_DEFAULTS: dict[str, Any] = {
    "model": "logistic-regression",
    "hidden": 8,
    "rounds": 10,
    "local_steps": 5,
    "batch_size": None,
    "learning_rate": 1.0,
    "l2": 0.0,
    "clip_norm": 10.0,
    "seed": 0,
    "min_group_size": None,
    "epsilon": None,
    "threshold": None,
}


class InvalidData(ValueError):
    """A provider's rows the model cannot train on (checked before anything is sent)."""


@dataclass(frozen=True)
class FLParams:
    """What to train. Validated on construction from JSON; see ``PARAMETER_SCHEMA``."""

    columns: tuple[Column, ...]
    features: tuple[str, ...]
    label: str
    model: str = "logistic-regression"
    hidden: int = 8
    rounds: int = 10
    local_steps: int = 5
    batch_size: int | None = None
    learning_rate: float = 1.0
    l2: float = 0.0
    clip_norm: float = 10.0
    seed: int = 0
    min_group_size: int | None = None
    epsilon: float | None = None
    threshold: int | None = None

    # What the output-policy checks (``node.algorithms.disclosure``) read of a query:
    # training always reads every row of the provider.
    filter = None
    group_column = None
    categories: tuple[int | str, ...] = field(default=(), init=False, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FLParams:
        data = json_object(data, PARAMETER_SCHEMA)
        columns = parse_columns(data["columns"])
        types = {c.name: c.type for c in columns}
        identifiers = {c.name for c in columns if c.identifier}
        features = data.get("features")
        if (
            not isinstance(features, list | tuple)
            or not 1 <= len(features) <= MAX_COLUMNS
            or not all(isinstance(f, str) for f in features)
        ):
            raise InvalidParams("features", "must be a non-empty list of column names")
        if len(set(features)) != len(features):
            raise InvalidParams("features", "names a column twice")
        label = data.get("label")
        if not isinstance(label, str):
            raise InvalidParams("label", "must be a column name (string)")
        for where, name in [*(("features", f) for f in features), ("label", label)]:
            if name not in types:
                raise InvalidParams(where, f"unknown column {name!r}")
            if name in identifiers:
                raise InvalidParams(where, f"column {name!r} is an identifier")
            allowed = ("integer",) if where == "label" else ("integer", "decimal")
            if types[name] not in allowed:
                raise InvalidParams(
                    where, f"column {name!r} is {types[name]}, must be {' or '.join(allowed)}"
                )
        if label in features:
            raise InvalidParams("label", f"column {label!r} is also a feature")
        model = data.get("model", _DEFAULTS["model"])
        if model not in MODELS:
            raise InvalidParams("model", f"must be one of {list(MODELS)}, got {model!r}")
        if model != "mlp" and "hidden" in data:
            raise InvalidParams("hidden", "only an mlp has hidden units")
        batch_size = data.get("batch_size")
        if batch_size is not None and (not is_int(batch_size) or not 1 <= batch_size <= INT_LIMIT):
            raise InvalidParams("batch_size", f"must be a positive integer, got {batch_size!r}")
        min_group = min_group_size(data)
        epsilon = data.get("epsilon")
        if epsilon is not None:
            epsilon = number(data, "epsilon", None, positive=True)
        threshold = data.get("threshold")
        if threshold is not None and (not is_int(threshold) or not 2 <= threshold <= MAX_PROVIDERS):
            raise InvalidParams(
                "threshold", f"must be an integer in 2..{MAX_PROVIDERS}, got {threshold!r}"
            )
        params = cls(
            columns=columns,
            features=tuple(features),
            label=label,
            model=model,
            hidden=integer(data, "hidden", _DEFAULTS["hidden"], 1, MAX_HIDDEN),
            rounds=integer(data, "rounds", _DEFAULTS["rounds"], 1, MAX_ROUNDS),
            local_steps=integer(data, "local_steps", _DEFAULTS["local_steps"], 1, MAX_LOCAL_STEPS),
            batch_size=batch_size,
            learning_rate=number(data, "learning_rate", _DEFAULTS["learning_rate"], positive=True),
            l2=number(data, "l2", _DEFAULTS["l2"], positive=False),
            clip_norm=number(data, "clip_norm", _DEFAULTS["clip_norm"], positive=True),
            seed=integer(data, "seed", _DEFAULTS["seed"], 0, INT_LIMIT),
            min_group_size=min_group,
            epsilon=epsilon,
            threshold=threshold,
        )
        params.encoding()  # refuses a clip norm the fixed point cannot carry
        return params

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (``from_json(p.to_json()) == p``)."""
        out: dict[str, Any] = {
            "columns": [column_json(c) for c in self.columns],
            "features": list(self.features),
            "label": self.label,
            "model": self.model,
            "rounds": self.rounds,
            "local_steps": self.local_steps,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "clip_norm": self.clip_norm,
            "seed": self.seed,
            "min_group_size": self.min_group_size,
            "epsilon": self.epsilon,
            "threshold": self.threshold,
        }
        if self.model == "mlp":
            out["hidden"] = self.hidden
        return out

    def network(self) -> Model:
        if self.model == "mlp":
            return MLP(len(self.features), self.hidden)
        return LogisticRegression(len(self.features))

    def training(self) -> LocalTraining:
        return LocalTraining(
            self.local_steps, self.learning_rate, self.l2, self.batch_size, "steps", self.seed
        )

    def encoding(self) -> FixedPoint:
        try:
            return FixedPoint(clip_norm=self.clip_norm)
        except ValueError as exc:
            raise InvalidParams("clip_norm", str(exc)) from None

    def threshold_for(self, providers: int) -> int:
        """The secure sum's threshold for ``providers`` parties (``secagg.threshold_for``)."""
        try:
            return secagg.threshold_for(providers, self.threshold)
        except secagg.InvalidSession as exc:
            raise InvalidParams(exc.field, exc.detail) from None


#: The parameters' type under the name the runner and the node service look up.
Params = FLParams


def noise_plan(params: FLParams, policy: EffectivePolicy | None) -> float | None:
    """The epsilon each round spends (the task's split evenly over the rounds), or None
    where the policy and the parameters ask for no noise; refuses an epsilon whose
    noise the exact sampler cannot draw at this model's sensitivity."""
    if policy is None or policy.epsilon_per_query is None:
        return None
    per_round = policy.epsilon_per_query / params.rounds
    n_params = params.network().n_params
    try:
        dp_noise.NoisePlan.figure(per_round, params.encoding().l1_sensitivity(n_params))
    except ValueError as exc:
        raise InvalidParams("epsilon", f"{per_round:g} per round: {exc}") from None
    return per_round


def plan_for(
    params: FLParams,
    providers: Sequence[str],
    aggregator: str,
    task_id: bytes = bytes(32),
    policy: EffectivePolicy | None = None,
) -> horizontal.FedAvgPlan:
    """The FedAvg plan every party derives alike from the task's facts."""
    try:
        return horizontal.FedAvgPlan(
            params.network(),
            tuple(providers),
            aggregator,
            params.training(),
            params.encoding(),
            rounds=params.rounds,
            init_seed=params.seed,
            threshold=params.threshold,
            epsilon_per_round=noise_plan(params, policy),
            task_id=task_id or bytes(32),
        )
    except InvalidParams:
        raise
    except ValueError as exc:
        raise InvalidParams("params", str(exc)) from None


def training_data(params: FLParams, table: pa.Table) -> tuple[FloatArray, FloatArray]:
    """The features (float64; a decimal column's exact value divided by 10^scale, correctly
    rounded) and the 0/1 labels of a provider's table."""
    kinds = {c.name: c for c in params.columns}
    if table.num_rows == 0:
        raise InvalidData("no rows to train on")
    x = np.empty((table.num_rows, len(params.features)), dtype=np.float64)
    for j, name in enumerate(params.features):
        column = table.column(name)
        if column.null_count:
            raise InvalidData(f"column {name!r} has missing values")
        if kinds[name].type == "decimal":
            x[:, j] = decimal_unscaled(column) / float(10 ** kinds[name].scale)
        else:
            x[:, j] = column.to_numpy().astype(np.float64)
    labels = table.column(params.label)
    if labels.null_count:
        raise InvalidData(f"label column {params.label!r} has missing values")
    y = labels.to_numpy()
    if not np.all((y == 0) | (y == 1)):
        raise InvalidData(f"label column {params.label!r} holds values other than 0 and 1")
    return x, y.astype(np.float64)


class RoundChannel(ForwardingChannel):
    """The task's channel with every step name prefixed by the round (``round-<r>/``)."""

    def __init__(self, inner: Channel, round_number: int) -> None:
        super().__init__(inner)
        self.prefix = f"round-{round_number}/"

    def send(self, peer: str, step: str, payload: bytes) -> None:
        self.inner.send(peer, self.prefix + step, payload)

    def receive(self, peer: str, step: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        return self.inner.receive(peer, self.prefix + step, timeout)


def _model_step(round_number: int) -> str:
    return f"{STEP_MODEL}/{round_number}"


def encode_model(params: FloatArray) -> bytes:
    """A global model on the wire: big-endian float64, exactly as the digest hashes it."""
    return np.asarray(params, dtype=">f8").tobytes()


def decode_model(plan: horizontal.FedAvgPlan, payload: bytes, sender: str, step: str) -> FloatArray:
    n = plan.model.n_params
    if len(payload) != 8 * n:
        raise secagg.ProtocolError(sender, step, f"{len(payload)} bytes, expected {8 * n}")
    values: FloatArray = np.frombuffer(payload, dtype=">f8").astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise secagg.ProtocolError(sender, step, "model holds NaN or infinite values")
    return values


# -------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class FLResult:
    """The trained model and the audit chain of the run (what the runner commits)."""

    model: Model
    features: tuple[str, ...]
    label: str
    weights: FloatArray = field(repr=False, compare=False)
    genesis: bytes
    rounds: tuple[horizontal.RoundResult, ...] = field(repr=False, compare=False)
    policy: EffectivePolicy | None = field(default=None, compare=False)

    @property
    def model_digest(self) -> bytes:
        return model_digest(self.model, self.weights)

    @property
    def chain_head(self) -> bytes:
        """The last round's chained digest: what the last checkpoint anchors."""
        return self.rounds[-1].round_digest if self.rounds else self.genesis

    def to_json(self) -> dict[str, Any]:
        epsilons = [r.epsilon for r in self.rounds if r.epsilon is not None]
        return {
            "algorithm": NAME,
            "version": VERSION,
            "model": self.model.to_json(),
            "features": list(self.features),
            "label": self.label,
            "weights": [float(w) for w in self.weights.tolist()],
            "model_digest": self.model_digest.hex(),
            "genesis": self.genesis.hex(),
            "rounds": [
                {
                    "round": r.round,
                    "model_digest": r.model_digest.hex(),
                    "round_digest": r.round_digest.hex(),
                    "contributors": list(r.contributors),
                    "total_weight": r.total_weight,
                    "epsilon": r.epsilon,
                }
                for r in self.rounds
            ],
            "chain_head": self.chain_head.hex(),
            "epsilon_spent": sum(epsilons) if epsilons else None,
            "policy": None if self.policy is None else self.policy.to_json(),
        }


# --------------------------------------------------------------------------- entry points


def run_provider(
    channel: Channel,
    params: FLParams,
    rows: pa.Table,
    aggregator: str,
    providers: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    identity: secagg.Identity,
    verifier: secagg.SignatureVerifier | None = None,
    task_id: bytes = b"",
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    policy: EffectivePolicy | None = None,
    noise_rng: np.random.Generator | None = None,
) -> None:
    """Train on ``rows`` for every round, contributing each clipped update to the secure
    sum, and continue from the global model the aggregator sends.

    The rows are read and checked before any message is sent, so bad data fails here
    without leaving peers half-way through a round."""
    if channel.me not in providers:
        raise InvalidParams("providers", f"this party ({channel.me}) is not a provider")
    try:
        x, y = training_data(params, rows)
    except (KeyError, ValueError) as exc:
        raise InvalidData(f"rows: {exc}") from None
    plan = plan_for(params, providers, aggregator, task_id, policy)
    current = plan.initial_params()
    for r in range(plan.rounds):
        horizontal.provide_round(
            RoundChannel(channel, r),
            plan,
            r,
            current,
            x,
            y,
            identity,
            verifier=verifier,
            timeout=timeout,
            noise_rng=noise_rng,
            random_bytes=random_bytes,
        )
        if r + 1 < plan.rounds:
            step = _model_step(r)
            current = decode_model(
                plan, channel.receive(aggregator, step, timeout), aggregator, step
            )


def run_aggregator(
    channel: Channel,
    params: FLParams,
    providers: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    verifier: secagg.SignatureVerifier,
    task_id: bytes = b"",
    policy: EffectivePolicy | None = None,
    checkpoint: Callable[[int, bytes], object] | None = None,
) -> FLResult:
    """Run every round's secure sum, publish each global model to the providers, and
    return the final model with its digest chain. ``checkpoint(r, link_r)`` is called
    once per round, after the round's model is computed and before it is sent on."""
    plan = plan_for(params, providers, channel.me, task_id, policy)
    current = plan.initial_params()
    genesis = horizontal.genesis_digest(plan)
    previous = genesis
    results: list[horizontal.RoundResult] = []
    for r in range(plan.rounds):
        result = horizontal.aggregate_round(
            RoundChannel(channel, r), plan, r, current, previous, verifier, timeout=timeout
        )
        results.append(result)
        current, previous = result.params, result.round_digest
        if checkpoint is not None:
            checkpoint(r, result.round_digest)
        if r + 1 < plan.rounds:
            payload = encode_model(current)
            for provider in plan.providers:
                channel.send(provider, _model_step(r), payload)
    return FLResult(
        plan.model, params.features, params.label, current, genesis, tuple(results), policy
    )


def replay(
    params: FLParams,
    data: Mapping[str, tuple[FloatArray, FloatArray]],
    aggregator: str,
    task_id: bytes = bytes(32),
) -> tuple[FloatArray, list[bytes]]:
    """The plaintext reference: the same rounds with the encoded updates summed in the
    clear (no secure sum, no noise); the model and the chained digests, which a secure
    run must equal bit for bit."""
    plan = plan_for(params, list(data), aggregator, task_id)
    current = plan.initial_params()
    previous = horizontal.genesis_digest(plan)
    links = []
    for r in range(plan.rounds):
        vectors = [
            horizontal.contribution(plan, r, current, x, y, name, 2)
            for name, (x, y) in data.items()
        ]
        totals = [sum(column) for column in zip(*vectors, strict=True)]
        current = horizontal.apply_totals(plan, current, totals)
        previous = horizontal.chain_digest(previous, model_digest(plan.model, current), r)
        links.append(previous)
    return current, links
