"""Vertical logistic regression with Paillier as an approved algorithm the task runner runs.

Seats (requester-style, ``PROTOCOL = "requester"``, as ``node/algorithms/psi.py``):
seat 0 is the *label holder* A, the task's creator, with its own dataset (an id column,
the 0/1 label column and some feature columns); every other seat is a *feature holder*
B_k with a granted dataset (an id column and feature columns). A learns the model share
of its own columns and the intercept; each B_k trains the share of its own columns.

Phases, all over the task's channel (step names never collide: ``vfl-task/...`` here,
``psi/...`` for the alignment, ``vfl/...`` for training):

1. **Readiness.** Every party reads and checks its own rows before anything else (the
   columns named by the parameters exist with the right types and no nulls, labels are
   0/1, no normalised identifier occurs in two rows). Each B_k sends A ``vfl-task/ready``
   (``{"ok": true}`` or ``{"refused": reason}``); A then sends every B_k ``vfl-task/go``
   (``{"ok": true}``, or the first refusal, its own included), so a party whose data does
   not fit stops every peer at once with the same on-chain reason, not by a timeout.
2. **Alignment by PSI.** The approved PSI module's own entry points, unchanged:
   ``psi.run_requester``/``psi.run_responder`` in mode ``intersection`` on the id columns
   (the DH-PSI chain on ristretto255 over normalised identifiers; with k > 1 feature
   holders A learns X ∩ Y_1 ∩ ... ∩ Y_k). A then sends each B_k the aligned rows in an
   agreed order (``vfl-task/align``): the digests ``sha256("provnet:fl-vertical:align:v1"
   || NUL || task || NUL || item)`` of the matched items (``identifier_tag(kind) ||
   normalised id``), sorted by digest, so the order depends on neither party's row order.
   B_k maps each digest to its own row (an unknown or repeated digest is a protocol
   error) and answers ``vfl-task/aligned`` with the count or a refusal.
   *Disclosure:* every feature holder learns which of its own identifiers are in the
   intersection (the aligned ids). This is the known, accepted disclosure of hetero-LR
   sample alignment (FATE's intersection step gives the intersection ids to every
   party); it learns nothing about A's or another B's identifiers outside it. A learns
   the intersection (and |Y| or the joint size, as PSI says).
3. **Training.** ``node/fl/vertical.py`` on the aligned rows (``run_label_holder`` /
   ``run_feature_holder``; protocol, leakage and threat model in its docstring: B_k only
   ever sees the public key, Paillier ciphertexts of the residuals and its own masked
   gradient; A sees the partial logits u_Bk and masked gradients). The plan is derived
   alike by every party from the parameters, the seats and the task id: Paillier key of
   ``key_bits`` (2048 by default; 1024..4095 accepted, below 2048 for tests only),
   ``epochs``, ``batch_size``, ``learning_rate``, ``l2``, ``residual`` (``taylor`` or
   ``sigmoid``) and ``seed`` (the public mini-batch schedule).

Output policy: the aligned row count must be at least the policy's minimum group size
(the policy comes from the feature holders' datasets, as for PSI, raised by
``min_group_size``). A refuses (``GROUP_TOO_SMALL``) before sending the alignment, and
every B_k refuses too when the alignment it receives is smaller, so a requester running
modified code cannot make a feature holder train on fewer rows. ``OUTPUT_POLICY`` is
False: the statistics rules (independent provider organisations, query history) are not
applied, as for PSI.

Features are used as the datasets hold them (an integer column as it is, a decimal one
as its exact value divided by 10^scale, correctly rounded); standardise them before
(each party owns whole columns, so it can standardise its own locally, or use secure
statistics for shared means). Features are quantised to 16 fractional bits inside the
protocol (``VerticalPlan.feature_frac_bits``).

Result (A's, committed by the runner): A's model share (its features' weights and the
intercept, exact float64), its digest (``vertical.share_digest``), the genesis and the
chained link after every epoch, the per-epoch mean log-loss, the aligned count, the PSI
set sizes, the feature holders' seats and feature names, and the policy.

Feature holders return their share to the runner (``run_responder``), which keeps it
in the node's task record (``{"share": ...}``, never sent, not committed): the scoring
task (``node/algorithms/fl_score.py``) loads it from there.

Checkpoints (``CHECKPOINTS``): every party anchors its own chain with
``TaskRegistry.anchorCheckpoint(task, epoch, link)``, one per epoch, after training (the
library returns the links when the run ends): link_e = ``chain_digest(link_{e-1},
share_digest(party, weights after epoch e), e)`` from ``genesis(plan, party)``. The
auditor's ``fl_round_chain`` check judges every party's chain.

Task id: the plan binds the task id (genesis digest, alignment digests). It is read
from the ``RecordingChannel`` the runner wraps every task channel in
(``channel.task_id``); without one, 32 zero bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import Column, decimal_unscaled
from node.algorithms import identifiers, psi
from node.algorithms.output_policy import EffectivePolicy
from node.algorithms.param_fields import (
    INT_LIMIT,
    column_name,
    integer,
    is_int,
    json_object,
    min_group_size,
    number,
)
from node.algorithms.task_columns import InvalidParams
from node.channel import Channel
from node.fl import vertical
from node.fl.models import FloatArray

NAME: Final = "fl-vertical"
VERSION: Final = "0.1.0"
KIND: Final = AlgorithmKind.FL
# Seat 0 is the label holder and holds its own dataset; every other seat a feature holder.
PROTOCOL: Final = "requester"
# The statistics rules do not apply; the policy used is the minimum group size.
OUTPUT_POLICY: Final = False
# Every party anchors its per-epoch share chain (the runner passes ``checkpoint``).
CHECKPOINTS: Final = True

_HERE = Path(__file__).resolve().parent
EXTRA_SOURCES: tuple[str, ...] = (
    str(_HERE / "psi.py"),
    str(_HERE.parent / "crypto" / "ecdh_psi.py"),
    str(_HERE.parent / "crypto" / "oprf.py"),
    str(_HERE / "identifiers.py"),
    str(_HERE / "output_policy.py"),
    str(_HERE / "task_columns.py"),
    str(_HERE / "param_fields.py"),
    str(_HERE.parent / "fl" / "vertical.py"),
    str(_HERE.parent / "fl" / "horizontal.py"),
    str(_HERE.parent / "fl" / "models.py"),
    str(_HERE.parent / "fl" / "fixed_point.py"),
)

_T = TypeVar("_T")

REASONS: Final = psi.REASONS
MAX_RESPONDERS: Final = psi.MAX_RESPONDERS
MAX_FEATURES: Final = vertical.MAX_COLUMNS
MAX_EPOCHS: Final = 1000
MIN_KEY_BITS: Final = vertical.MIN_KEY_BITS
MAX_KEY_BITS: Final = 4095
RESIDUALS: Final = ("taylor", "sigmoid")

STEP_READY: Final = "vfl-task/ready"
STEP_GO: Final = "vfl-task/go"
STEP_ALIGN: Final = "vfl-task/align"
STEP_ALIGNED: Final = "vfl-task/aligned"
ALIGN_DOMAIN: Final = b"provnet:fl-vertical:align:v1"
_DIGEST: Final = 32
ALIGN_CHUNK: Final = 65536  # digests per alignment message: 2 MB

PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fl-vertical parameters",
    "type": "object",
    "required": [
        "identifier_kind",
        "requester_column",
        "responder_column",
        "label",
        "requester_features",
        "responder_features",
    ],
    "additionalProperties": False,
    "properties": {
        "identifier_kind": {
            "description": "How the id columns are normalised before PSI (docs/identifiers.md).",
            "enum": list(identifiers.KINDS),
        },
        "country": {
            "description": "Default calling code for phone numbers written nationally.",
            "enum": sorted(identifiers.COUNTRIES),
        },
        "requester_column": {
            "description": "The label holder's string id column.",
            "type": "string",
            "minLength": 1,
        },
        "responder_column": {
            "description": "Every feature holder's string id column.",
            "type": "string",
            "minLength": 1,
        },
        "label": {"description": "The label holder's integer column of 0/1.", "type": "string"},
        "requester_features": {
            "description": "The label holder's integer or decimal feature columns, in order.",
            "type": "array",
            "items": {"type": "string"},
            "maxItems": MAX_FEATURES,
        },
        "responder_features": {
            "description": "Per feature holder, in seat order: its feature columns.",
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_RESPONDERS,
            "items": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": MAX_FEATURES,
            },
        },
        "epochs": {"type": "integer", "minimum": 1, "maximum": MAX_EPOCHS},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": INT_LIMIT},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "l2": {"type": "number", "minimum": 0},
        "residual": {"enum": list(RESIDUALS)},
        "key_bits": {
            "description": "Paillier modulus bits; below 2048 for tests only.",
            "type": "integer",
            "minimum": MIN_KEY_BITS,
            "maximum": MAX_KEY_BITS,
        },
        "seed": {
            "description": "The public mini-batch schedule.",
            "type": "integer",
            "minimum": 0,
            "maximum": INT_LIMIT,
        },
        "min_group_size": {
            "description": "Raise the policy's minimum aligned row count.",
            "type": ["integer", "null"],
        },
    },
}
_DEFAULTS: dict[str, Any] = {
    "country": "86",
    "epochs": 2,
    "batch_size": 32,
    "learning_rate": 0.3,
    "l2": 0.0,
    "residual": "taylor",
    "key_bits": 2048,
    "seed": 0,
    "min_group_size": None,
}


# --------------------------------------------------------------------------- errors


class VerticalTaskError(Exception):
    """A run that cannot finish; ``reason`` is the on-chain outcome name (never holds an
    identifier: it ends up in logs and task outcomes)."""

    def __init__(self, reason: str, detail: str, *, from_peer: bool = False) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        self.reason = reason
        self.detail = detail
        self.from_peer = from_peer
        super().__init__(f"{reason}: {detail}")


# ----------------------------------------------------------------------- parameters


def _names(field_name: str, value: object, *, allow_empty: bool) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_FEATURES:
        raise InvalidParams(field_name, f"must be a list of at most {MAX_FEATURES} column names")
    if not value and not allow_empty:
        raise InvalidParams(field_name, "must name at least one column")
    names = tuple(column_name(f"{field_name}[{i}]", v) for i, v in enumerate(value))
    if len(set(names)) != len(names):
        raise InvalidParams(field_name, "names a column twice")
    return names


@dataclass(frozen=True)
class VerticalParams:
    """What to train; built from JSON by :meth:`from_json`, which validates strictly."""

    identifier_kind: str
    requester_column: str
    responder_column: str
    label: str
    requester_features: tuple[str, ...]
    responder_features: tuple[tuple[str, ...], ...]
    country: str = "86"
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 0.3
    l2: float = 0.0
    residual: str = "taylor"
    key_bits: int = 2048
    seed: int = 0
    min_group_size: int | None = None

    @property
    def epsilon(self) -> float | None:
        """No differential-privacy noise here: the runner passes this to the policy."""
        return None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VerticalParams:
        raw = json_object(raw, PARAMETER_SCHEMA)
        kind, country = psi.identifier_fields(raw)
        requester_column = column_name("requester_column", raw["requester_column"])
        responder_column = column_name("responder_column", raw["responder_column"])
        label = column_name("label", raw["label"])
        mine = _names("requester_features", raw["requester_features"], allow_empty=True)
        if label in mine or requester_column in mine or label == requester_column:
            raise InvalidParams(
                "label", "the label, the id column and the features must be distinct columns"
            )
        theirs = raw["responder_features"]
        if not isinstance(theirs, list | tuple) or not 1 <= len(theirs) <= MAX_RESPONDERS:
            raise InvalidParams(
                "responder_features", f"must be a list of 1..{MAX_RESPONDERS} lists of columns"
            )
        responder_features = tuple(
            _names(f"responder_features[{i}]", v, allow_empty=False) for i, v in enumerate(theirs)
        )
        for i, names in enumerate(responder_features):
            if responder_column in names:
                raise InvalidParams(f"responder_features[{i}]", "the id column cannot be a feature")
        residual = raw.get("residual", _DEFAULTS["residual"])
        if residual not in RESIDUALS:
            raise InvalidParams("residual", f"must be one of {list(RESIDUALS)}, got {residual!r}")
        return cls(
            identifier_kind=kind,
            requester_column=requester_column,
            responder_column=responder_column,
            label=label,
            requester_features=mine,
            responder_features=responder_features,
            country=country,
            epochs=integer(raw, "epochs", _DEFAULTS["epochs"], 1, MAX_EPOCHS),
            batch_size=integer(raw, "batch_size", _DEFAULTS["batch_size"], 1, INT_LIMIT),
            learning_rate=number(raw, "learning_rate", _DEFAULTS["learning_rate"], positive=True),
            l2=number(raw, "l2", _DEFAULTS["l2"], positive=False),
            residual=residual,
            key_bits=integer(raw, "key_bits", _DEFAULTS["key_bits"], MIN_KEY_BITS, MAX_KEY_BITS),
            seed=integer(raw, "seed", _DEFAULTS["seed"], 0, INT_LIMIT),
            min_group_size=min_group_size(raw),
        )

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (``from_json(p.to_json()) == p``)."""
        return {
            "identifier_kind": self.identifier_kind,
            "country": self.country,
            "requester_column": self.requester_column,
            "responder_column": self.responder_column,
            "label": self.label,
            "requester_features": list(self.requester_features),
            "responder_features": [list(f) for f in self.responder_features],
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "residual": self.residual,
            "key_bits": self.key_bits,
            "seed": self.seed,
            "min_group_size": self.min_group_size,
        }

    def check_responder_count(self, k: int) -> None:
        """One feature list per feature holder (for the task creator's node)."""
        if not is_int(k) or k != len(self.responder_features):
            raise InvalidParams(
                "responder_features",
                f"{len(self.responder_features)} feature list(s) for {k!r} feature holder(s)",
            )


#: The parameters' type under the name the runner and the node service look up.
Params = VerticalParams


def plan_for(
    params: VerticalParams,
    label_holder: str,
    feature_holders: Sequence[str],
    rows: int,
    task: bytes,
) -> vertical.VerticalPlan:
    """The training plan every party derives alike from the task's facts."""
    return vertical.VerticalPlan(
        label_holder,
        tuple(feature_holders),
        rows=rows,
        epochs=params.epochs,
        batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        l2=params.l2,
        residual="sigmoid" if params.residual == "sigmoid" else "taylor",
        key_bits=params.key_bits,
        shuffle_seed=params.seed,
        task_id=task,
    )


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class VerticalResult:
    """What the label holder learns (what the runner commits)."""

    features: tuple[str, ...]
    label: str
    feature_holders: tuple[str, ...]
    responder_features: tuple[tuple[str, ...], ...]
    share: vertical.VerticalShare = field(repr=False, compare=False)
    genesis: bytes
    aligned_rows: int
    requester_items: int
    invalid_requester_rows: int
    responder_items: tuple[int, ...]
    key_bits: int
    policy: EffectivePolicy | None = field(default=None, compare=False)

    @property
    def share_digest(self) -> bytes:
        return vertical.share_digest(self.share.party, self.share.weights)

    @property
    def chain_head(self) -> bytes:
        return self.share.epoch_digests[-1] if self.share.epoch_digests else self.genesis

    def to_json(self) -> dict[str, Any]:
        weights = [float(w) for w in self.share.weights.tolist()]
        return {
            "algorithm": NAME,
            "version": VERSION,
            "label_holder": self.share.party,
            "features": list(self.features),
            "label": self.label,
            "weights": weights[:-1],
            "intercept": weights[-1],
            "share_digest": self.share_digest.hex(),
            "genesis": self.genesis.hex(),
            "epochs": [
                {"epoch": e, "share_digest": s.hex(), "chain_digest": link.hex(), "loss": loss}
                for e, (s, link, loss) in enumerate(
                    zip(
                        self.share.share_digests,
                        self.share.epoch_digests,
                        self.share.losses,
                        strict=True,
                    )
                )
            ],
            "chain_head": self.chain_head.hex(),
            "feature_holders": [
                {"party": p, "features": list(f)}
                for p, f in zip(self.feature_holders, self.responder_features, strict=True)
            ],
            "aligned_rows": self.aligned_rows,
            "requester_items": self.requester_items,
            "invalid_requester_rows": self.invalid_requester_rows,
            "responder_items": list(self.responder_items),
            "key_bits": self.key_bits,
            "policy": None if self.policy is None else self.policy.to_json(),
        }


# ------------------------------------------------------------------ local data work


@dataclass(frozen=True)
class _Rows:
    """One party's checked rows: features, labels (A only), and normalised id -> row."""

    x: FloatArray
    y: FloatArray | None
    index: dict[str, int]


def _column(table: pa.Table, columns: Sequence[Column], name: str, types: Sequence[str]) -> Column:
    column = next((c for c in columns if c.name == name), None)
    if column is None or name not in table.column_names:
        raise VerticalTaskError("DATASET_MISMATCH", f"column {name!r} is not in this dataset")
    if column.type not in types:
        raise VerticalTaskError(
            "DATASET_MISMATCH",
            f"column {name!r} is {column.type}; it must be {' or '.join(types)}",
        )
    if table.column(name).null_count:
        raise VerticalTaskError("DATASET_MISMATCH", f"column {name!r} has missing values")
    return column


def feature_matrix(table: pa.Table, columns: Sequence[Column], names: Sequence[str]) -> FloatArray:
    x = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        column = _column(table, columns, name, ("integer", "decimal"))
        data = table.column(name)
        if column.type == "decimal":
            try:
                x[:, j] = decimal_unscaled(data) / float(10**column.scale)
            except ValueError as exc:
                raise VerticalTaskError("DATASET_MISMATCH", f"column {name!r}: {exc}") from None
        else:
            x[:, j] = data.to_numpy().astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise VerticalTaskError("DATASET_MISMATCH", "a feature value is not finite")
    return x


def identifier_index(
    params: AlignedOnIds, table: pa.Table, columns: Sequence[Column], name: str
) -> dict[str, int]:
    """Normalised identifier -> row; rows whose identifier is refused are left out, and
    an identifier on two rows is refused (the alignment would be ambiguous)."""
    _column(table, columns, name, ("string",))
    values, _ = identifiers.normalise_column(
        params.identifier_kind, table.column(name), country=params.country
    )
    index: dict[str, int] = {}
    for row, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        if value in index:
            raise VerticalTaskError(
                "DATASET_MISMATCH",
                f"rows {index[value]} and {row} hold the same identifier "
                f"({identifiers.redact(value)})",
            )
        index[value] = row
    return index


def requester_rows(params: VerticalParams, table: pa.Table, columns: Sequence[Column]) -> _Rows:
    """The label holder's rows, checked: features, 0/1 labels, identifiers."""
    index = identifier_index(params, table, columns, params.requester_column)
    x = feature_matrix(table, columns, params.requester_features)
    _column(table, columns, params.label, ("integer",))
    y = table.column(params.label).to_numpy().astype(np.float64)
    if not np.all((y == 0) | (y == 1)):
        raise VerticalTaskError(
            "DATASET_MISMATCH", f"label column {params.label!r} holds values other than 0 and 1"
        )
    return _Rows(x, y, index)


def responder_rows(
    params: VerticalParams, table: pa.Table, columns: Sequence[Column], seat: int
) -> _Rows:
    """Feature holder ``seat``'s (0-based) rows, checked."""
    index = identifier_index(params, table, columns, params.responder_column)
    return _Rows(feature_matrix(table, columns, params.responder_features[seat]), None, index)


class AlignedOnIds(Protocol):
    """What the readiness and alignment steps need of a task's parameters (this
    module's and the scoring task's, ``node/algorithms/fl_score.py``)."""

    @property
    def identifier_kind(self) -> str: ...

    @property
    def country(self) -> str: ...

    @property
    def requester_column(self) -> str: ...

    @property
    def responder_column(self) -> str: ...


def alignment_psi(params: AlignedOnIds) -> psi.PsiParams:
    """The alignment: PSI's ``intersection`` on the id columns."""
    return psi.PsiParams(
        mode="intersection",
        identifier_kind=params.identifier_kind,
        requester_column=params.requester_column,
        responder_column=params.responder_column,
        country=params.country,
    )


def align_digest(params: AlignedOnIds, task: bytes, identifier: str) -> bytes:
    """How a matched identifier is named to the feature holders (see the docstring)."""
    item = identifiers.identifier_tag(params.identifier_kind) + identifier.encode()
    return hashlib.sha256(ALIGN_DOMAIN + b"\0" + task + b"\0" + item).digest()


def aligned_order(params: AlignedOnIds, task: bytes, matched: Sequence[str]) -> list[str]:
    """The agreed row order: the matched identifiers sorted by their alignment digest."""
    return sorted(matched, key=lambda ident: align_digest(params, task, ident))


def _task_of(channel: Channel) -> bytes:
    task = getattr(channel, "task_id", None)
    return task if isinstance(task, bytes) and len(task) == 32 else bytes(32)


# ------------------------------------------------------------------------ messages


def _message(payload: bytes, step: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VerticalTaskError("PROTOCOL_ERROR", f"{step}: not a JSON message") from None
    if not isinstance(value, dict):
        raise VerticalTaskError("PROTOCOL_ERROR", f"{step}: not a JSON object")
    return value


def _encode(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _check_refusal(message: Mapping[str, Any], peer: str, step: str) -> None:
    if set(message) == {"refused"}:
        reason = message["refused"]
        if reason not in REASONS:
            raise VerticalTaskError("PROTOCOL_ERROR", f"{step}: refusal with an unknown reason")
        raise VerticalTaskError(reason, f"{peer} stopped the task ({step})", from_peer=True)


def receive_message(channel: Channel, peer: str, step: str, timeout: float) -> dict[str, Any]:
    """A JSON object from ``peer``; a refusal in its place raises the peer's reason."""
    message = _message(channel.receive(peer, step, timeout), step)
    _check_refusal(message, peer, step)
    return message


def _refusal(reason: str) -> bytes:
    return _encode({"refused": reason})


# ------------------------------------------------------------------- entry points


def lead_readiness(
    channel: Channel, responders: Sequence[str], prepare: Callable[[], _T], timeout: float
) -> _T:
    """The label holder's readiness step: ``prepare`` (its own checks) first, then every
    feature holder's answer; the first refusal (its own included) goes to every peer."""
    try:
        mine = prepare()
    except (VerticalTaskError, InvalidParams) as exc:
        reason = getattr(exc, "reason", "PROTOCOL_ERROR")
        for r in responders:
            channel.send(r, STEP_GO, _refusal(reason))
        if isinstance(exc, InvalidParams):
            raise VerticalTaskError("PROTOCOL_ERROR", str(exc)) from None
        raise
    refusal: VerticalTaskError | None = None
    for r in responders:
        try:
            receive_message(channel, r, STEP_READY, timeout)
        except VerticalTaskError as exc:
            refusal = refusal or exc
    if refusal is not None:
        for r in responders:
            channel.send(r, STEP_GO, _refusal(refusal.reason))
        raise refusal
    for r in responders:
        channel.send(r, STEP_GO, _encode({"ok": True}))
    return mine


def follow_readiness(
    channel: Channel, requester: str, prepare: Callable[[], _T], timeout: float
) -> _T:
    """A feature holder's readiness step: its own checks, its answer, the go."""
    try:
        mine = prepare()
    except (VerticalTaskError, InvalidParams) as exc:
        channel.send(requester, STEP_READY, _refusal(getattr(exc, "reason", "PROTOCOL_ERROR")))
        if isinstance(exc, InvalidParams):
            raise VerticalTaskError("PROTOCOL_ERROR", str(exc)) from None
        raise
    channel.send(requester, STEP_READY, _encode({"ok": True}))
    receive_message(channel, requester, STEP_GO, timeout)
    return mine


def lead_alignment(
    channel: Channel,
    params: AlignedOnIds,
    table: pa.Table,
    columns: Sequence[Column],
    responders: Sequence[str],
    known: Mapping[str, int],
    *,
    timeout: float,
    policy: EffectivePolicy,
    executor: Executor | None = None,
    processes: int = 1,
) -> tuple[list[str], psi.PsiResult]:
    """PSI's intersection, then the agreed order sent to every feature holder; returns
    the aligned identifiers (those of ``known``, the label holder's usable rows) in
    that order, and the PSI result (its set sizes)."""
    task = _task_of(channel)
    found = psi.run_requester(
        channel,
        alignment_psi(params),
        table,
        columns,
        responders,
        timeout=timeout,
        policy=policy,
        executor=executor,
        processes=processes,
    )
    matched = [m for m in (found.intersection or ()) if m in known]
    order = aligned_order(params, task, matched)
    n = len(order)
    if n < policy.min_group_size:
        for r in responders:
            channel.send(r, f"{STEP_ALIGN}/head", _refusal("GROUP_TOO_SMALL"))
        raise VerticalTaskError(
            "GROUP_TOO_SMALL",
            f"{n} aligned rows, below the minimum group size {policy.min_group_size}",
        )
    digests = b"".join(align_digest(params, task, ident) for ident in order)
    chunks = [
        digests[s : s + ALIGN_CHUNK * _DIGEST]
        for s in range(0, len(digests), ALIGN_CHUNK * _DIGEST)
    ]
    for r in responders:
        channel.send(r, f"{STEP_ALIGN}/head", _encode({"rows": n, "chunks": len(chunks)}))
        for i, chunk in enumerate(chunks):
            channel.send(r, f"{STEP_ALIGN}/{i}", chunk)
    for r in responders:
        answer = receive_message(channel, r, STEP_ALIGNED, timeout)
        if answer != {"rows": n}:
            raise VerticalTaskError("PROTOCOL_ERROR", f"{r} aligned another number of rows")
    return order, found


def follow_alignment(
    channel: Channel,
    params: AlignedOnIds,
    table: pa.Table,
    columns: Sequence[Column],
    requester: str,
    responders: Sequence[str],
    known: Mapping[str, int],
    *,
    timeout: float,
    policy: EffectivePolicy,
    executor: Executor | None = None,
    processes: int = 1,
) -> np.ndarray[Any, np.dtype[np.intp]]:
    """A feature holder's side of :func:`lead_alignment`: its rows (of ``known``,
    normalised identifier -> row) in the agreed order."""
    psi.run_responder(
        channel,
        alignment_psi(params),
        table,
        columns,
        requester,
        responders,
        timeout=timeout,
        policy=policy,
        executor=executor,
        processes=processes,
    )
    try:
        picks = _receive_alignment(
            channel, params, _task_of(channel), requester, known, policy, timeout
        )
    except VerticalTaskError as exc:
        if not exc.from_peer:
            channel.send(requester, STEP_ALIGNED, _refusal(exc.reason))
        raise
    channel.send(requester, STEP_ALIGNED, _encode({"rows": len(picks)}))
    return picks


def run_requester(
    channel: Channel,
    params: VerticalParams,
    table: pa.Table,
    columns: Sequence[Column],
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    executor: Executor | None = None,
    processes: int = 1,
    checkpoint: Callable[[int, bytes], object] | None = None,
) -> VerticalResult:
    """The label holder (seat 0): check, align by PSI, train, return A's share."""
    k = len(responders)
    if channel.me in responders or len(set(responders)) != k:
        raise VerticalTaskError(
            "PROTOCOL_ERROR", "the feature holders must be distinct and exclude the label holder"
        )

    def prepare() -> _Rows:
        params.check_responder_count(k)
        return requester_rows(params, table, columns)

    rows = lead_readiness(channel, responders, prepare, timeout)
    order, found = lead_alignment(
        channel,
        params,
        table,
        columns,
        responders,
        rows.index,
        timeout=timeout,
        policy=policy,
        executor=executor,
        processes=processes,
    )
    picks = np.array([rows.index[ident] for ident in order], dtype=np.intp)
    assert rows.y is not None
    plan = plan_for(params, channel.me, responders, len(order), _task_of(channel))
    share = vertical.run_label_holder(
        channel, plan, rows.x[picks], rows.y[picks], executor=executor, timeout=timeout
    )
    if checkpoint is not None:
        for epoch, link in enumerate(share.epoch_digests):
            checkpoint(epoch, link)
    return VerticalResult(
        features=params.requester_features,
        label=params.label,
        feature_holders=tuple(responders),
        responder_features=params.responder_features,
        share=share,
        genesis=share.genesis,
        aligned_rows=len(order),
        requester_items=found.requester_items,
        invalid_requester_rows=found.invalid_requester_rows,
        responder_items=found.responder_items,
        key_bits=params.key_bits,
        policy=policy,
    )


@dataclass(frozen=True)
class KeptShare:
    """What a feature holder's node keeps of a training task: its share (weights, the
    genesis and links of its chain) and the columns it weighs, in order."""

    share: vertical.VerticalShare
    features: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.share.to_json(), "features": list(self.features)}


def run_responder(
    channel: Channel,
    params: VerticalParams,
    table: pa.Table,
    columns: Sequence[Column],
    requester: str,
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    executor: Executor | None = None,
    processes: int = 1,
    checkpoint: Callable[[int, bytes], object] | None = None,
) -> KeptShare:
    """A feature holder: check, align by PSI, train its own share, anchor its chain
    (``checkpoint``); the share is returned for the runner to keep."""
    share = train_feature_holder(
        channel,
        params,
        table,
        columns,
        requester,
        responders,
        timeout=timeout,
        policy=policy,
        executor=executor,
        processes=processes,
    )
    if checkpoint is not None:
        for epoch, link in enumerate(share.epoch_digests):
            checkpoint(epoch, link)
    return KeptShare(share, params.responder_features[list(responders).index(channel.me)])


def train_feature_holder(
    channel: Channel,
    params: VerticalParams,
    table: pa.Table,
    columns: Sequence[Column],
    requester: str,
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    executor: Executor | None = None,
    processes: int = 1,
) -> vertical.VerticalShare:
    """:func:`run_responder` without the checkpoints."""
    me = channel.me
    if me not in responders or requester in responders or len(set(responders)) != len(responders):
        raise VerticalTaskError("PROTOCOL_ERROR", "this party must be one of distinct responders")

    def prepare() -> _Rows:
        params.check_responder_count(len(responders))
        return responder_rows(params, table, columns, responders.index(me))

    rows = follow_readiness(channel, requester, prepare, timeout)
    picks = follow_alignment(
        channel,
        params,
        table,
        columns,
        requester,
        responders,
        rows.index,
        timeout=timeout,
        policy=policy,
        executor=executor,
        processes=processes,
    )
    plan = plan_for(params, requester, responders, len(picks), _task_of(channel))
    return vertical.run_feature_holder(
        channel, plan, rows.x[picks], executor=executor, timeout=timeout
    )


def _receive_alignment(
    channel: Channel,
    params: AlignedOnIds,
    task: bytes,
    requester: str,
    known: Mapping[str, int],
    policy: EffectivePolicy,
    timeout: float,
) -> np.ndarray[Any, np.dtype[np.intp]]:
    """Our rows in the agreed order, from the label holder's digests; refuses an
    alignment below the minimum group size, an unknown or a repeated digest."""
    step = f"{STEP_ALIGN}/head"
    head = receive_message(channel, requester, step, timeout)
    n, count = head.get("rows"), head.get("chunks")
    if (
        set(head) != {"rows", "chunks"}
        or not is_int(n)
        or not is_int(count)
        or not 0 <= n <= len(known)
        or count != -(-n // ALIGN_CHUNK)
    ):
        raise VerticalTaskError("PROTOCOL_ERROR", f"{step}: malformed header")
    if n < policy.min_group_size:
        raise VerticalTaskError(
            "GROUP_TOO_SMALL",
            f"{n} aligned rows, below the minimum group size {policy.min_group_size}",
        )
    mine = {align_digest(params, task, ident): row for ident, row in known.items()}
    picks: list[int] = []
    previous = b""
    for i in range(count):
        chunk = channel.receive(requester, f"{STEP_ALIGN}/{i}", timeout)
        if len(chunk) % _DIGEST or not chunk or len(picks) + len(chunk) // _DIGEST > n:
            raise VerticalTaskError("PROTOCOL_ERROR", f"{STEP_ALIGN}/{i}: malformed chunk")
        for at in range(0, len(chunk), _DIGEST):
            d = chunk[at : at + _DIGEST]
            # Strictly increasing: the agreed order, and no row twice.
            if d <= previous or d not in mine:
                raise VerticalTaskError(
                    "PROTOCOL_ERROR",
                    f"{STEP_ALIGN}/{i}: a digest names no row of ours or is out of order",
                )
            previous = d
            picks.append(mine[d])
    if len(picks) != n:
        raise VerticalTaskError("PROTOCOL_ERROR", f"{STEP_ALIGN}: {len(picks)} rows for {n}")
    return np.array(picks, dtype=np.intp)


__all__ = [
    "CHECKPOINTS",
    "EXTRA_SOURCES",
    "KIND",
    "NAME",
    "OUTPUT_POLICY",
    "PARAMETER_SCHEMA",
    "PROTOCOL",
    "VERSION",
    "AlignedOnIds",
    "InvalidParams",
    "KeptShare",
    "Params",
    "VerticalParams",
    "VerticalResult",
    "VerticalTaskError",
    "align_digest",
    "aligned_order",
    "alignment_psi",
    "feature_matrix",
    "follow_alignment",
    "follow_readiness",
    "identifier_index",
    "lead_alignment",
    "lead_readiness",
    "plan_for",
    "receive_message",
    "run_requester",
    "run_responder",
    "train_feature_holder",
]
