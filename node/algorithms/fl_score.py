"""Batch scoring with a trained vertical model, as an approved algorithm the runner runs.

The parties of a completed ``fl-vertical`` training task (``node/algorithms/
fl_vertical.py``), in the same seats, score the rows their scoring datasets share:
seat 0, the label holder A (the task's creator), learns one score per aligned
identifier; every feature holder B_k learns nothing but which of its identifiers were
aligned (as in training).

Phases, over the task's channel:

1. **Readiness** (``fl_vertical.lead_readiness``/``follow_readiness``). Every party
   loads *its own* model share from its node's record of the training task and checks
   it against the chain (:func:`model_share`): the training task is an ``fl-vertical``
   task that completed, with exactly this task's participants in the same seats; the
   share's weights hash (``vertical.share_digest``) to its last epoch's share digest;
   and the chain recomputed from the share's genesis over its epoch share digests is,
   link for link, what this node anchored in the training task. It then reads the
   share's feature columns from its scoring dataset (same names, integer or decimal,
   no nulls; ids as in training). Any refusal stops every peer with its reason.
2. **Alignment** (``fl_vertical.lead_alignment``/``follow_alignment``): PSI's
   intersection on the id columns, then the agreed order of the aligned rows.
3. **Scoring** (``node/fl/scoring.py``): each B_k sends A its partial logits
   ``X_Bk w_Bk`` of the aligned rows in that order (chunked); A adds its own
   ``X_A w_A + c`` and applies the sigmoid. Why the partial logits travel in
   plaintext: see ``node/fl/scoring.py`` (A could recover them from the score anyway
   with one feature holder).

Audit: every party anchors two checkpoints in this task, under its own seat: round 0 =
the link its share extends in the training chain (the genesis for one epoch, else the
link of the epoch before the last), round 1 = the share digest it scored with. So
``chain_digest(round 0, round 1, E - 1)`` must be the last link the party anchored in
the training task (``auditor/verify/scoring.py`` checks it from the chain alone): the
model used is the one the training task anchored, party by party.

Disclosure: A learns a score per aligned identifier (the purpose); by subtraction of
two scoring tasks on datasets that differ in one row it learns nothing beyond that
row's own score, which either task gives it directly. The output policy's minimum group
size applies to the aligned rows, refused before any partial logit is sent.

Result (A's, committed by the runner): the training task, every party's share digest,
the aligned identifiers (normalised) and their scores in the agreed order, PSI's set
sizes and the policy. Horizontal models are not scored here: the consumer holds the
whole global model of an ``fl-horizontal`` task (its result) and scores its own rows
locally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import Column
from node.algorithms import fl_vertical, identifiers, psi
from node.algorithms.fl_vertical import InvalidParams, VerticalTaskError
from node.algorithms.output_policy import EffectivePolicy
from node.channel import Channel
from node.fl import scoring, vertical
from node.fl.horizontal import chain_digest
from node.fl.models import FloatArray
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
EXTRA_SOURCES: tuple[str, ...] = (
    str(_HERE / "fl_vertical.py"),
    *fl_vertical.EXTRA_SOURCES,
    str(_HERE.parent / "fl" / "scoring.py"),
)

REASONS: Final = psi.REASONS
TRAINING_ALGORITHM: Final = fl_vertical.NAME

PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fl-score parameters",
    "type": "object",
    "required": ["training_task", "identifier_kind", "requester_column", "responder_column"],
    "additionalProperties": False,
    "properties": {
        "training_task": {
            "description": "The completed fl-vertical task whose model is used (0x + 64 hex).",
            "type": "string",
            "pattern": "^0x[0-9a-fA-F]{64}$",
        },
        "identifier_kind": {
            "description": "How the id columns are normalised before PSI (docs/identifiers.md).",
            "enum": list(identifiers.KINDS),
        },
        "country": {
            "description": "Default calling code for phone numbers written nationally.",
            "enum": sorted(identifiers.COUNTRIES),
        },
        "requester_column": {
            "description": "The label holder's string id column in its scoring dataset.",
            "type": "string",
            "minLength": 1,
        },
        "responder_column": {
            "description": "Every feature holder's string id column.",
            "type": "string",
            "minLength": 1,
        },
        "min_group_size": {
            "description": "Raise the policy's minimum aligned row count.",
            "type": ["integer", "null"],
        },
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
        if not isinstance(raw, Mapping):
            raise InvalidParams("params", "must be a JSON object")
        unknown = sorted(set(raw) - set(PARAMETER_SCHEMA["properties"]))
        if unknown:
            raise InvalidParams(str(unknown[0]), "unknown parameter")
        for required in PARAMETER_SCHEMA["required"]:
            if required not in raw:
                raise InvalidParams(required, "is required")
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
        kind, country = fl_vertical.identifier_fields(raw)
        return cls(
            training_task=training,
            identifier_kind=kind,
            requester_column=fl_vertical.column_name("requester_column", raw["requester_column"]),
            responder_column=fl_vertical.column_name("responder_column", raw["responder_column"]),
            country=country,
            min_group_size=fl_vertical.min_group_size(raw),
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

    def psi_params(self) -> psi.PsiParams:
        return psi.PsiParams(
            mode="intersection",
            identifier_kind=self.identifier_kind,
            requester_column=self.requester_column,
            responder_column=self.responder_column,
            country=self.country,
        )


Params = ScoreParams


# --------------------------------------------------------------- the model, checked


@dataclass(frozen=True)
class ModelShare:
    """One party's checked share: the columns it weighs, its weights (and A's
    intercept), its digest, and the training link it extends."""

    party: str
    features: tuple[str, ...]
    weights: FloatArray = field(repr=False)
    intercept: float | None
    digest: bytes
    extends: bytes
    epochs: int


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


def model_share(training: PriorTask | None, me: str, participants: Sequence[str]) -> ModelShare:
    """This node's share of the training task, checked against the chain (docstring,
    phase 1); a refusal names what does not hold."""
    if training is None:
        raise _refuse("no such task on chain")
    if training.algorithm != TRAINING_ALGORITHM:
        raise _refuse(
            f"its algorithm is {training.algorithm or 'unknown'}, not {TRAINING_ALGORITHM}"
        )
    if training.state != "COMPLETED":
        raise _refuse(f"it is {training.state}, not COMPLETED")
    if [p.lower() for p in training.participants] != [p.lower() for p in participants]:
        raise _refuse("its participants and seats are not this task's")
    record = training.record
    label_holder = participants[0].lower() == me.lower()
    kept = None if record is None else record.get("result" if label_holder else "share")
    if not isinstance(kept, Mapping):
        raise _refuse("this node holds no model share of it")
    try:
        features = tuple(str(f) for f in kept["features"])
        weights = np.array(kept["weights"], dtype=np.float64)
        intercept = float(kept["intercept"]) if label_holder else None
        epochs = list(kept["epochs"])
        genesis = _hex32(kept["genesis"], "the share's genesis")
        shares = [
            _hex32(e["share_digest"], f"epoch {i}'s share digest") for i, e in enumerate(epochs)
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(f"the stored share is malformed ({exc})") from None
    if weights.shape != (len(features),) or not epochs:
        raise _refuse("the stored share's weights do not match its features")
    full = weights if intercept is None else np.append(weights, intercept)
    digest = vertical.share_digest(me, full)
    if digest != shares[-1]:
        raise _refuse("the stored weights do not hash to the last epoch's share digest")
    links, link = [], genesis
    for e, share in enumerate(shares):
        link = chain_digest(link, share, e)
        links.append((e, link))
    if tuple(links) != training.anchored:
        raise _refuse(
            f"the stored share's chain ({len(links)} epoch(s)) is not the one this node "
            f"anchored ({len(training.anchored)} checkpoint(s))"
        )
    extends = genesis if len(links) == 1 else links[-2][1]
    return ModelShare(me, features, weights, intercept, digest, extends, len(links))


def _rows(
    params: ScoreParams,
    table: pa.Table,
    columns: Sequence[Column],
    id_column: str,
    share: ModelShare,
) -> tuple[FloatArray, dict[str, int]]:
    """The scoring dataset's features (the share's columns, in order) and its
    normalised identifier -> row index."""
    index = fl_vertical.identifier_index(params, table, columns, id_column)
    return fl_vertical.feature_matrix(table, columns, share.features), index


# ----------------------------------------------------------------------- the result


@dataclass(frozen=True)
class ScoreResult:
    """What the label holder learns (what the runner commits)."""

    training_task: bytes
    shares: tuple[tuple[str, bytes], ...]  # (party, share digest), in seat order
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
            "model": [{"party": p, "share_digest": d.hex()} for p, d in self.shares],
            "aligned_rows": len(self.identifiers),
            "identifiers": list(self.identifiers),
            "scores": [float(s) for s in self.scores.tolist()],
            "requester_items": self.requester_items,
            "responder_items": list(self.responder_items),
            "policy": None if self.policy is None else self.policy.to_json(),
        }


# -------------------------------------------------------------------- entry points


def _anchor(checkpoint: Callable[[int, bytes], object] | None, share: ModelShare) -> None:
    if checkpoint is not None:
        checkpoint(0, share.extends)
        checkpoint(1, share.digest)


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
    """The label holder: check its share, align, gather the partial logits, score."""
    participants = [channel.me, *responders]

    def prepare() -> tuple[ModelShare, FloatArray, dict[str, int]]:
        share = model_share(training(params.training_task), channel.me, participants)
        x, index = _rows(params, table, columns, params.requester_column, share)
        return share, x, index

    share, x, index = fl_vertical.lead_readiness(channel, responders, prepare, timeout)
    order, found = fl_vertical.lead_alignment(
        channel, params, table, columns, responders, index,
        timeout=timeout, policy=policy, executor=executor, processes=processes,
    )  # fmt: skip
    _anchor(checkpoint, share)
    picks = np.array([index[ident] for ident in order], dtype=np.intp)
    assert share.intercept is not None
    full = np.append(share.weights, share.intercept)
    scores = scoring.score_label_holder(channel, tuple(responders), full, x[picks], timeout)
    theirs = [_reported_digest(channel, r, timeout) for r in responders]
    return ScoreResult(
        training_task=params.training_task,
        shares=((channel.me, share.digest), *zip(responders, theirs, strict=True)),
        identifiers=tuple(order),
        scores=scores,
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
    """A feature holder: check its share, align, send its partial logits."""
    participants = [requester, *responders]

    def prepare() -> tuple[ModelShare, FloatArray, dict[str, int]]:
        share = model_share(training(params.training_task), channel.me, participants)
        x, index = _rows(params, table, columns, params.responder_column, share)
        return share, x, index

    share, x, index = fl_vertical.follow_readiness(channel, requester, prepare, timeout)
    picks = fl_vertical.follow_alignment(
        channel, params, table, columns, requester, responders, index,
        timeout=timeout, policy=policy, executor=executor, processes=processes,
    )  # fmt: skip
    _anchor(checkpoint, share)
    scoring.score_feature_holder(channel, requester, share.weights, x[picks])
    channel.send(requester, STEP_SHARE, share.digest)


STEP_SHARE: Final = "vfl-score/share-digest"


def _reported_digest(channel: Channel, peer: str, timeout: float) -> bytes:
    """The share digest a feature holder says it scored with (it anchored it too)."""
    digest = channel.receive(peer, STEP_SHARE, timeout)
    if len(digest) != 32:
        raise VerticalTaskError("PROTOCOL_ERROR", f"{STEP_SHARE} from {peer}: not 32 bytes")
    return digest


__all__ = [
    "CHECKPOINTS",
    "EXTRA_SOURCES",
    "KIND",
    "NAME",
    "OUTPUT_POLICY",
    "PARAMETER_SCHEMA",
    "PROTOCOL",
    "USES_TRAINING",
    "VERSION",
    "ModelShare",
    "Params",
    "ScoreParams",
    "ScoreResult",
    "model_share",
    "run_requester",
    "run_responder",
]
