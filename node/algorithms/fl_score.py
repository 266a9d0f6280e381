"""Batch scoring with a trained federated model, as an approved algorithm the runner runs.

The model is the output of a completed training task, named by ``training_task``:

* **vertical** (``fl-vertical``, ``node/algorithms/fl_vertical.py``): the training
  task's parties, in the same seats, each with a scoring dataset holding the columns
  of its own model share. Seat 0, the label holder A, learns one score per aligned
  identifier; every feature holder B_k learns nothing but which of its identifiers were
  aligned (as in training).
* **horizontal** (``fl-horizontal``, ``node/algorithms/fl_horizontal.py``): the
  training task's consumer (its data-less aggregator, which holds the global model) in
  seat 0 with a dataset of the identifiers it wants scored, and exactly one of the
  training task's providers in seat 1 with rows of the training features under an id
  column. The consumer learns the scores of the aligned identifiers; the provider
  learns the final global model (it held every earlier round's model already) and
  which of its identifiers were aligned.

Phases, over the task's channel:

1. **The model, checked against the chain** (before anything else). Vertical: every
   party loads *its own* share from its node's record of the training task
   (:func:`model_share`): the training task completed with exactly this task's
   participants in the same seats; the share's weights hash to its last epoch's share
   digest; the chain recomputed from the share's genesis over its epoch share digests
   is, link for link, what this node anchored there. Horizontal: the consumer loads the
   model from its own committed result and parameters (:func:`consumer_model`) and
   sends it (parameters envelope, weights, the link it extends) to the provider
   (``vfl-score/model``), which checks it (:func:`provider_model`): the envelope opens
   the training task's on-chain ``paramsDigest``, and ``chain_digest(link, model
   digest, R - 1)`` is the last round link the aggregator anchored, so these are the
   final weights of that training. Each party then reads its scoring rows: the
   model's feature columns (integer or decimal, no nulls; a decimal's exact value over
   10^scale, as in training) and its id column.
2. **Readiness and alignment** (``fl_vertical.lead_readiness``/``follow_readiness``,
   ``lead_alignment``/``follow_alignment``): any refusal stops every peer with its
   reason; then PSI's intersection on the id columns and the agreed row order.
3. **Scoring** (``node/fl/scoring.py``): vertical: each B_k sends A its partial logits
   ``X_Bk w_Bk`` of the aligned rows (chunked), A adds ``X_A w_A + c`` and applies the
   sigmoid (why plaintext: ``node/fl/scoring.py``); horizontal: the provider sends the
   consumer the model's logits of its aligned rows, which the consumer turns into
   probabilities.

Audit: every party anchors two checkpoints in this task under its own seat: round 0 =
the training link the model extends (vertical: in its own chain; horizontal: in the
aggregator's), round 1 = the digest of the model (share) it scored with, so
``chain_digest(round 0, round 1, last)`` must be the last training link
(``auditor/verify/scoring.py`` checks it from the chain alone, given the parameters).

Disclosure: the consumer or label holder learns a score per aligned identifier (the
purpose); two scoring tasks over datasets that differ in one row tell it nothing beyond
that row's own score, which either task gives directly. The output policy's minimum
group size applies to the aligned rows, refused before any logit is sent. What a score
is: for logistic regression, sigmoid(w . x + c), so the scorer learns one linear
projection of each scored row (vertical: of the feature holder's columns, the
protocol's known leakage, as in training). One model gives one projection; a member
that had k differently-trained models scored over the same rows would learn k
projections, and with k >= the number of columns the rows themselves. What bounds that
is consent, not arithmetic: every training and every scoring consumes one use of a
grant of each data holder's dataset (``maxUses``), and each training's parameters are
anchored for the auditor; a data holder grants scoring uses accordingly.

Result (seat 0's, committed by the runner): the training task and its algorithm, per
party the digest it scored with, the aligned identifiers (normalised) and their scores
in the agreed order, PSI's set sizes and the policy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import Column
from ledger.task_params import ParamsEnvelope
from node.algorithms import fl_horizontal, fl_vertical, psi
from node.algorithms.fl_vertical import VerticalTaskError
from node.algorithms.output_policy import EffectivePolicy
from node.algorithms.param_fields import column_name, json_object, min_group_size
from node.algorithms.task_columns import InvalidParams
from node.channel import Channel
from node.fl import scoring, vertical
from node.fl.horizontal import chain_digest
from node.fl.models import FloatArray, Model, model_digest, sigmoid
from node.prior_task import PriorTask

NAME: Final = "fl-score"
VERSION: Final = "0.1.0"
KIND: Final = AlgorithmKind.FL
PROTOCOL: Final = "requester"
OUTPUT_POLICY: Final = False
# Every party anchors the model it scores with (two checkpoints, docstring).
CHECKPOINTS: Final = True
# The runner hands run_requester/run_responder ``training``: what the node knows of a
# training task (``node/prior_task.py``).
USES_TRAINING: Final = True

_HERE = Path(__file__).resolve().parent
# Everything the two training algorithms' code runs, once each.
EXTRA_SOURCES: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            str(_HERE / "fl_vertical.py"),
            *fl_vertical.EXTRA_SOURCES,
            str(_HERE / "fl_horizontal.py"),
            *fl_horizontal.EXTRA_SOURCES,
            str(_HERE.parent / "fl" / "scoring.py"),
            str(_HERE.parent / "prior_task.py"),
        )
    )
)

REASONS: Final = psi.REASONS
TRAINING_ALGORITHMS: Final = (fl_vertical.NAME, fl_horizontal.NAME)

PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fl-score parameters",
    "type": "object",
    "required": ["training_task", "identifier_kind", "requester_column", "responder_column"],
    "additionalProperties": False,
    "properties": {
        "training_task": {
            "description": "The completed fl-vertical or fl-horizontal task whose model "
            "is used (0x + 64 hex).",
            "type": "string",
            "pattern": "^0x[0-9a-fA-F]{64}$",
        },
        # The id columns are matched as in training: fl-vertical's definitions.
        "identifier_kind": fl_vertical.PARAMETER_SCHEMA["properties"]["identifier_kind"],
        "country": fl_vertical.PARAMETER_SCHEMA["properties"]["country"],
        "requester_column": {
            "description": "Seat 0's (label holder's or consumer's) string id column.",
            "type": "string",
            "minLength": 1,
        },
        "responder_column": {
            "description": "Every other seat's (feature holder's or provider's) string id column.",
            "type": "string",
            "minLength": 1,
        },
        "min_group_size": fl_vertical.PARAMETER_SCHEMA["properties"]["min_group_size"],
    },
}


@dataclass(frozen=True)
class ScoreParams:
    """What to score; built from JSON by :meth:`from_json`, which validates strictly."""

    training_task: bytes
    identifier_kind: str
    requester_column: str
    responder_column: str
    country: str = "86"
    min_group_size: int | None = None

    @property
    def epsilon(self) -> float | None:
        return None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ScoreParams:
        raw = json_object(raw, PARAMETER_SCHEMA)
        task = raw["training_task"]
        try:
            ok = isinstance(task, str) and task.startswith("0x") and len(task) == 66
            training = bytes.fromhex(task[2:]) if ok else b""
        except ValueError:
            training = b""
        if len(training) != 32:
            raise InvalidParams(
                "training_task", f"must be a task id, 0x and 64 hex digits, got {task!r}"
            )
        kind, country = psi.identifier_fields(raw)
        return cls(
            training_task=training,
            identifier_kind=kind,
            requester_column=column_name("requester_column", raw["requester_column"]),
            responder_column=column_name("responder_column", raw["responder_column"]),
            country=country,
            min_group_size=min_group_size(raw),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "training_task": "0x" + self.training_task.hex(),
            "identifier_kind": self.identifier_kind,
            "country": self.country,
            "requester_column": self.requester_column,
            "responder_column": self.responder_column,
            "min_group_size": self.min_group_size,
        }


Params = ScoreParams


# --------------------------------------------------------------- the model, checked


@dataclass(frozen=True)
class Scorer:
    """One party's checked model: the columns it reads, its weights (and the label
    holder's intercept), its digest, the training link it extends, the last round or
    epoch index, and what it computes from its rows (partial or whole logits)."""

    features: tuple[str, ...]
    digest: bytes
    extends: bytes
    last: int
    logits: Callable[[FloatArray], FloatArray] = field(repr=False)
    # Horizontal, on the consumer's side: what the provider needs (``vfl-score/model``).
    model_message: bytes = b""


def _refuse(detail: str) -> VerticalTaskError:
    return VerticalTaskError("PROTOCOL_ERROR", f"training task: {detail}")


def _hex32(value: object, what: str) -> bytes:
    try:
        out = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        out = b""
    if len(out) != 32:
        raise _refuse(f"{what} is not 64 hex digits")
    return out


def completed_training(training: PriorTask | None) -> PriorTask:
    """A training task this node can score with: on chain, of a trained-model
    algorithm this node runs, completed."""
    if training is None:
        raise _refuse("no such task on chain")
    if training.algorithm not in TRAINING_ALGORITHMS:
        raise _refuse(
            f"its algorithm is {training.algorithm or 'unknown'}, not one of "
            f"{', '.join(TRAINING_ALGORITHMS)}"
        )
    if training.state != "COMPLETED":
        raise _refuse(f"it is {training.state}, not COMPLETED")
    return training


def _same(a: Sequence[str], b: Sequence[str]) -> bool:
    return [x.lower() for x in a] == [x.lower() for x in b]


def model_share(training: PriorTask, me: str, participants: Sequence[str]) -> Scorer:
    """Vertical: this node's own share of the training task, checked against its own
    anchors (docstring, phase 1); a refusal names what does not hold."""
    if not _same(training.participants, participants):
        raise _refuse("its participants and seats are not this task's")
    label_holder = participants[0].lower() == me.lower()
    record = training.record
    kept = None if record is None else record.get("result" if label_holder else "share")
    if not isinstance(kept, Mapping):
        raise _refuse("this node holds no model share of it")
    try:
        features = tuple(str(f) for f in kept["features"])
        weights = np.array(kept["weights"], dtype=np.float64)
        intercept = float(kept["intercept"]) if label_holder else 0.0
        epochs = list(kept["epochs"])
        genesis = _hex32(kept["genesis"], "the share's genesis")
        shares = [
            _hex32(e["share_digest"], f"epoch {i}'s share digest") for i, e in enumerate(epochs)
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(f"the stored share is malformed ({exc})") from None
    if weights.shape != (len(features),) or not epochs:
        raise _refuse("the stored share's weights do not match its features")
    full = np.append(weights, intercept) if label_holder else weights
    digest = vertical.share_digest(me, full)
    if digest != shares[-1]:
        raise _refuse("the stored weights do not hash to the last epoch's share digest")
    links, link = [], genesis
    for e, share in enumerate(shares):
        link = chain_digest(link, share, e)
        links.append((e, link))
    anchored = training.anchors_of(me)
    if tuple(links) != anchored:
        raise _refuse(
            f"the stored share's chain ({len(links)} epoch(s)) is not the one this node "
            f"anchored ({len(anchored)} checkpoint(s))"
        )
    extends = genesis if len(links) == 1 else links[-2][1]
    return Scorer(
        features,
        digest,
        extends,
        len(links) - 1,
        lambda x: scoring.partial_logits(weights, x, intercept),
    )


def _horizontal_seats(training: PriorTask, participants: Sequence[str]) -> None:
    """Seat 0 is the training's aggregator, seat 1 one of its providers, nobody else."""
    aggregators = training.seats(with_data=False)
    providers = [p.lower() for p in training.seats(with_data=True)]
    if (
        len(aggregators) != 1
        or len(participants) != 2
        or participants[0].lower() != aggregators[0].lower()
        or participants[1].lower() not in providers
    ):
        raise _refuse(
            "a horizontal model is scored by its training's consumer (seat 0) and exactly "
            "one of its providers (seat 1)"
        )


def _horizontal_scorer(
    envelope: ParamsEnvelope, weights: FloatArray, extends: bytes, training: PriorTask
) -> Scorer:
    """The model, checked: the envelope opens the training's ``paramsDigest`` and the
    weights, after ``extends``, give the aggregator's last anchored round link."""
    if envelope.digest != training.params_digest:
        raise _refuse("the parameters do not open its on-chain paramsDigest")
    try:
        params = fl_horizontal.FLParams.from_json(envelope.params)
    except ValueError as exc:
        raise _refuse(f"its parameters: {exc}") from None
    network = params.network()
    if weights.shape != (network.n_params,) or not np.all(np.isfinite(weights)):
        raise _refuse(f"the model needs {network.n_params} finite weights")
    digest = model_digest(network, weights)
    anchored = training.anchors_of(training.seats(with_data=False)[0])
    if not anchored or chain_digest(extends, digest, len(anchored) - 1) != anchored[-1][1]:
        raise _refuse(
            "the model is not the one its last anchored round binds (the weights and link "
            "do not chain to the aggregator's last checkpoint)"
        )
    return Scorer(params.features, digest, extends, len(anchored) - 1, _logits_of(network, weights))


def _logits_of(network: Model, weights: FloatArray) -> Callable[[FloatArray], FloatArray]:
    return lambda x: network.logits(weights, x)


def consumer_model(training: PriorTask, me: str, participants: Sequence[str]) -> Scorer:
    """Horizontal, seat 0: the consumer's own committed result and parameters."""
    _horizontal_seats(training, participants)
    record = training.record
    result = None if record is None else record.get("result")
    if not isinstance(result, Mapping) or training.params is None:
        raise _refuse("this node holds no result and parameters of it")
    try:
        envelope = ParamsEnvelope.from_json(training.params)
        weights = np.array(result["weights"], dtype=np.float64)
        rounds = list(result["rounds"])
        genesis = _hex32(result["genesis"], "the result's genesis")
        links = [_hex32(r["round_digest"], f"round {i}'s digest") for i, r in enumerate(rounds)]
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(f"the stored result is malformed ({exc})") from None
    if not links:
        raise _refuse("the stored result has no round")
    extends = genesis if len(links) == 1 else links[-2]
    scorer = _horizontal_scorer(envelope, weights, extends, training)
    message = {
        "params": envelope.to_json(),
        "weights": weights.astype(">f8").tobytes().hex(),
        "extends": extends.hex(),
    }
    return dataclasses.replace(scorer, model_message=_encode(message))


def provider_model(
    training: PriorTask, participants: Sequence[str], message: Mapping[str, Any]
) -> Scorer:
    """Horizontal, seat 1: the model the consumer sent, checked against the chain."""
    _horizontal_seats(training, participants)
    try:
        envelope = ParamsEnvelope.from_json(message["params"])
        raw = bytes.fromhex(str(message["weights"]))
        extends = _hex32(message["extends"], "the model's link")
    except (KeyError, TypeError, ValueError) as exc:
        raise VerticalTaskError("PROTOCOL_ERROR", f"{STEP_MODEL}: malformed ({exc})") from None
    if len(raw) % 8:
        raise VerticalTaskError("PROTOCOL_ERROR", f"{STEP_MODEL}: weights are not float64s")
    weights = np.frombuffer(raw, dtype=">f8").astype(np.float64)
    return _horizontal_scorer(envelope, weights, extends, training)


def _encode(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _rows(
    params: ScoreParams,
    table: pa.Table,
    columns: Sequence[Column],
    id_column: str,
    features: Sequence[str],
) -> tuple[FloatArray, dict[str, int]]:
    """The scoring dataset's features (the model's columns, in order) and its
    normalised identifier -> row index."""
    index = fl_vertical.identifier_index(params, table, columns, id_column)
    return fl_vertical.feature_matrix(table, columns, features), index


# ----------------------------------------------------------------------- the result


@dataclass(frozen=True)
class ScoreResult:
    """What seat 0 learns (what the runner commits)."""

    training_task: bytes
    training_algorithm: str
    digests: tuple[tuple[str, bytes], ...]  # (party, digest it scored with), seat order
    identifiers: tuple[str, ...]
    scores: FloatArray = field(repr=False, compare=False)
    requester_items: int
    responder_items: tuple[int, ...]
    policy: EffectivePolicy | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": NAME,
            "version": VERSION,
            "training_task": "0x" + self.training_task.hex(),
            "training_algorithm": self.training_algorithm,
            "model": [{"party": p, "digest": d.hex()} for p, d in self.digests],
            "aligned_rows": len(self.identifiers),
            "identifiers": list(self.identifiers),
            "scores": [float(s) for s in self.scores.tolist()],
            "requester_items": self.requester_items,
            "responder_items": list(self.responder_items),
            "policy": None if self.policy is None else self.policy.to_json(),
        }


# -------------------------------------------------------------------- entry points


STEP_MODEL: Final = "vfl-score/model"
STEP_DIGEST: Final = "vfl-score/digest"


def _anchor(checkpoint: Callable[[int, bytes], object] | None, scorer: Scorer) -> None:
    if checkpoint is not None:
        checkpoint(0, scorer.extends)
        checkpoint(1, scorer.digest)


def run_requester(
    channel: Channel,
    params: ScoreParams,
    table: pa.Table,
    columns: Sequence[Column],
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    training: Callable[[bytes], PriorTask | None],
    executor: Executor | None = None,
    processes: int = 1,
    checkpoint: Callable[[int, bytes], object] | None = None,
) -> ScoreResult:
    """Seat 0: check its model, align, gather the logits, score."""
    participants = [channel.me, *responders]
    kind: list[str] = []

    def prepare() -> tuple[Scorer, FloatArray, dict[str, int]]:
        facts = completed_training(training(params.training_task))
        kind.append(str(facts.algorithm))
        if facts.algorithm == fl_horizontal.NAME:
            try:
                scorer = consumer_model(facts, channel.me, participants)
            except VerticalTaskError as exc:
                for r in responders:
                    channel.send(r, STEP_MODEL, _refusal(exc.reason))
                raise
            for r in responders:
                channel.send(r, STEP_MODEL, scorer.model_message)
            _, index = _rows(params, table, columns, params.requester_column, ())
            return scorer, np.empty((table.num_rows, 0)), index
        scorer = model_share(facts, channel.me, participants)
        x, index = _rows(params, table, columns, params.requester_column, scorer.features)
        return scorer, x, index

    scorer, x, index = fl_vertical.lead_readiness(channel, responders, prepare, timeout)
    order, found = fl_vertical.lead_alignment(
        channel, params, table, columns, responders, index,
        timeout=timeout, policy=policy, executor=executor, processes=processes,
    )  # fmt: skip
    _anchor(checkpoint, scorer)
    picks = np.array([index[ident] for ident in order], dtype=np.intp)
    horizontal_model = kind[0] == fl_horizontal.NAME
    u = np.zeros(len(order)) if horizontal_model else scorer.logits(x[picks])
    theirs = []
    for r in responders:
        u = u + scoring.receive_logits(channel, r, len(order), timeout)
        digest = channel.receive(r, STEP_DIGEST, timeout)
        if len(digest) != 32:
            raise VerticalTaskError("PROTOCOL_ERROR", f"{STEP_DIGEST} from {r}: not 32 bytes")
        theirs.append(digest)
    return ScoreResult(
        training_task=params.training_task,
        training_algorithm=kind[0],
        digests=((channel.me, scorer.digest), *zip(responders, theirs, strict=True)),
        identifiers=tuple(order),
        scores=sigmoid(u),
        requester_items=found.requester_items,
        responder_items=found.responder_items,
        policy=policy,
    )


def run_responder(
    channel: Channel,
    params: ScoreParams,
    table: pa.Table,
    columns: Sequence[Column],
    requester: str,
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    training: Callable[[bytes], PriorTask | None],
    executor: Executor | None = None,
    processes: int = 1,
    checkpoint: Callable[[int, bytes], object] | None = None,
) -> None:
    """A feature holder or provider: check its model, align, send its logits."""
    participants = [requester, *responders]

    def prepare() -> tuple[Scorer, FloatArray, dict[str, int]]:
        facts = completed_training(training(params.training_task))
        if facts.algorithm == fl_horizontal.NAME:
            message = fl_vertical.receive_message(channel, requester, STEP_MODEL, timeout)
            scorer = provider_model(facts, participants, message)
        else:
            scorer = model_share(facts, channel.me, participants)
        x, index = _rows(params, table, columns, params.responder_column, scorer.features)
        return scorer, x, index

    scorer, x, index = fl_vertical.follow_readiness(channel, requester, prepare, timeout)
    picks = fl_vertical.follow_alignment(
        channel, params, table, columns, requester, responders, index,
        timeout=timeout, policy=policy, executor=executor, processes=processes,
    )  # fmt: skip
    _anchor(checkpoint, scorer)
    scoring.send_logits(channel, requester, scorer.logits(x[picks]))
    channel.send(requester, STEP_DIGEST, scorer.digest)


def _refusal(reason: str) -> bytes:
    return _encode({"refused": reason})


__all__ = [
    "CHECKPOINTS",
    "EXTRA_SOURCES",
    "KIND",
    "NAME",
    "OUTPUT_POLICY",
    "PARAMETER_SCHEMA",
    "PROTOCOL",
    "STEP_DIGEST",
    "STEP_MODEL",
    "TRAINING_ALGORITHMS",
    "USES_TRAINING",
    "VERSION",
    "Params",
    "ScoreParams",
    "ScoreResult",
    "Scorer",
    "completed_training",
    "consumer_model",
    "model_share",
    "provider_model",
    "run_requester",
    "run_responder",
]
