"""Private set intersection between one requester and k responders (DESIGN §6, "PSI").

Why this module exists: banks align samples, check cards and loans against each other
and total exposures over shared customers without handing each other customer lists.
The requester (seat 0) holds its own dataset and learns one of four results; the
responders learn set sizes only. This module is the approved algorithm the node's task
runner runs; the curve work lives in ``node.crypto.ecdh_psi`` (DH-PSI on ristretto255)
and ``node.crypto.oprf`` (RFC 9497), identifier normalisation in
``node.algorithms.identifiers``. See docs/psi.md for the operator's view.

Modes and protocols (X: the requester's distinct normalised identifiers, Y1..Yk the
responders'; items are ``identifier_tag(kind) || normalised``, deduplicated by each side
before anything is keyed, because equal items give equal keyed elements):

* ``intersection`` / ``cardinality`` (any k >= 1): a DH-PSI chain. The requester sends
  ``a*H(x)``; each responder R1..Rk applies its key in turn, keeping the order; the last
  responder Rk (the "combiner") returns 12-byte digests of ``b1..bk*a*H(x)`` (in the
  requester's order for ``intersection``, shuffled for ``cardinality``). Each responder
  keys its own shuffled set; for k = 1 it goes straight to the requester, for k > 1 it
  travels through every other responder (each applies its key and reshuffles) to the
  combiner, which keeps only elements present in all k sets and sends those, shuffled.
  The requester applies ``a`` and compares digests.
* ``intersection-sum`` (k = 1, Private Join and Compute style): the responder pairs its
  keyed elements with Paillier encryptions of its per-identifier sums; the requester
  multiplies the matched ciphertexts, adds a fresh encryption of a statistical mask and
  has the responder decrypt the masked total; it removes the mask. The responder never
  learns the sum, the matched set or its size; the requester never sees a single value.
* ``intersection-payload`` (k = 1, OPRF-based): the requester learns F(x) = OPRF_sk(x)
  for its items by blind evaluation; the responder sends, shuffled, for each of its
  identifiers a tag and a ChaCha20-Poly1305 ciphertext of the identifier's rows, both
  derived from F(y) by HKDF. Only identifiers the requester holds can be opened.

What each party learns (the leakage, also in docs/psi.md):

* every responder: |X| (it refuses small sets in ``cardinality``/``intersection-sum``),
  and for k > 1 the sizes of the other responders' sets; nothing about X's items, which
  it only sees under the requester's key;
* the combiner (k > 1): additionally the size of every intersection among the
  responders' sets (it holds them all under all k keys), in particular
  |Y1 ∩ ... ∩ Yk|; it cannot tell which items they are;
* the requester: the result and |Y1| (k = 1) or |Y1 ∩ ... ∩ Yk| (k > 1); in
  ``intersection-sum`` also which of the responder's shuffled positions matched (not
  which of its own items: the answer is shuffled);
* the evidence transcript: only keyed group elements, digests of doubly keyed elements,
  ciphertexts, OPRF-derived tags, counts and the Paillier modulus; never an identifier
  or an unkeyed hash of one.

Output policy: ``cardinality`` and ``intersection-sum`` are aggregates. Each responder
refuses (``GROUP_TOO_SMALL``) before sending anything of its own when |X| is below the
policy's minimum group size; the requester suppresses a count (and sum) below the
minimum. That suppression runs on the requester's node: the count is known to the
requester, as in PJC, so it binds a requester that runs this approved code, and the
grant's use count bounds repeated probing. ``intersection``/``intersection-payload``
disclose matched identifiers by definition (that is what the grant authorises): no
suppression applies.

Threat model: semi-honest parties (as ``ecdh_psi``). A malicious responder can make
answers wrong but learns nothing more about X; a malicious requester (modified code) can
skip suppression or, in ``intersection-sum``, have a subset of matched ciphertexts
decrypted, learning a per-identifier sum of an identifier it cannot name.

Transport: every step is a ``Channel`` message no larger than ``MAX_MESSAGE_BYTES``;
sets travel as streams: a JSON header ``{"chunks": c, "items": n}`` on ``<step>/head``,
then chunks ``<step>/0`` .. ``<step>/(c-1)`` of at most ``STREAM_CHUNK_ITEMS`` elements.
A party that must stop before it sent a stream (its dataset does not fit the task, the
policy refuses) sends ``{"refused": reason}`` as that stream's header instead, so its
peers fail at once with the same on-chain reason instead of waiting for a timeout; one
that stops part-way through a stream (a bad element from its peer) sends it in place of
the next chunk.

Memory (the ECDH modes, issue 14's 10^7 per side): streams are made while they are sent
and consumed while they arrive, chunk by chunk through the worker pool, so no party
holds a whole set of keyed elements. What a party holds whole is its distinct
identifiers as one Arrow array, plus, at the requester, the peer's 12-byte digests
(one sorted array) and one boolean byte per own item; the combiner holds the 12-byte answer
whole only to shuffle it (``cardinality``). With one responder the requester keys the
responder's set as it comes and only then makes its own (sending its header first), so
neither set waits whole in a transport queue; only the answer (12 bytes per item) can.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import phe  # type: ignore[import-untyped]
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import Column, arrow_type, decimal_strings, decimal_text, decimal_unscaled
from node.algorithms import identifiers
from node.algorithms.output_policy import EffectivePolicy
from node.algorithms.param_fields import (
    INT_LIMIT,
    column_name,
    is_int,
    json_object,
    min_group_size,
)
from node.algorithms.task_columns import InvalidParams
from node.channel import MAX_MESSAGE_BYTES, Channel
from node.crypto import ecdh_psi, oprf

NAME: Final = "psi"
VERSION: Final = "1.0.0"
KIND: Final = AlgorithmKind.PSI
# Seat 0 is the requester and holds its own dataset; every other seat is a responder.
PROTOCOL: Final = "requester"
# The stats-style provider-independence rules do not apply: the policy used here is the
# minimum group size (see the module docstring).
OUTPUT_POLICY: Final = False

_T = TypeVar("_T")
_R = TypeVar("_R")

_HERE = Path(__file__).resolve().parent
EXTRA_SOURCES: tuple[str, ...] = (
    str(_HERE.parent / "crypto" / "ecdh_psi.py"),
    str(_HERE.parent / "crypto" / "oprf.py"),
    str(_HERE / "identifiers.py"),
    str(_HERE / "output_policy.py"),
    str(_HERE / "task_columns.py"),
    str(_HERE / "param_fields.py"),
)

MODES: Final = ("intersection", "cardinality", "intersection-sum", "intersection-payload")
AGGREGATE_MODES: Final = frozenset({"cardinality", "intersection-sum"})
SINGLE_RESPONDER_MODES: Final = frozenset({"intersection-sum", "intersection-payload"})
REASONS: Final = ("DATASET_MISMATCH", "GROUP_TOO_SMALL", "PROTOCOL_ERROR")

MAX_RESPONDERS: Final = 16
MAX_PAYLOAD_COLUMNS: Final = 32
STREAM_CHUNK_ITEMS: Final = 65536
"""Elements per stream message: 2 MB of 32-byte elements, far inside the 16 MB limit."""
MAX_STREAM_ITEMS: Final = 1 << 31
"""A header announcing more is refused before anything is allocated for it."""

_ELEMENT: Final = ecdh_psi.ELEMENT_BYTES
_DIGEST: Final = ecdh_psi.DIGEST_BYTES

# --- intersection-sum (Paillier) ---
PAILLIER_BITS: Final = 2048
SUM_BITS: Final = 127
"""|sum| < 2^127: int64 values over < 2^63 rows stay far inside."""
MASK_BITS: Final = SUM_BITS + 1 + 128
"""The mask r is uniform in [0, 2^MASK_BITS): sum + 2^SUM_BITS (non-negative, below
2^(SUM_BITS+1)) plus r is within 2^-128 of uniform, so the decrypting responder learns
nothing about the sum."""
_OFFSET: Final = 1 << SUM_BITS
_MAX_OPENED: Final = (1 << (SUM_BITS + 1)) + (1 << MASK_BITS)
_PAILLIER_CHUNK: Final = 256  # values per pool task: ~4 s of work, little pickling

# --- intersection-payload (OPRF + AEAD) ---
TAG_BYTES: Final = 16
PAD_BYTES: Final = 256
TAG_INFO: Final = b"provnet-psi-payload-tag-v1"
KEY_INFO: Final = b"provnet-psi-payload-key-v1"
PAYLOAD_AAD: Final = b"provnet-psi-payload-v1"
_NONCE: Final = bytes(12)  # each key encrypts exactly one plaintext (unique per identifier)
_OPRF_CHUNK: Final = 512
_RECORD_BUDGET: Final = MAX_MESSAGE_BYTES - 4096

PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "psi parameters",
    "type": "object",
    "required": ["mode", "identifier_kind", "requester_column", "responder_column"],
    "additionalProperties": False,
    "properties": {
        "mode": {
            "description": "What the requester learns: the matched identifiers, their count, "
            "the sum of a responder column over them, or the responder's rows for them.",
            "enum": list(MODES),
        },
        "identifier_kind": {
            "description": "How identifiers are normalised before matching (docs/identifiers.md).",
            "enum": list(identifiers.KINDS),
        },
        "requester_column": {
            "description": "The requester's string column holding the identifiers.",
            "type": "string",
            "minLength": 1,
        },
        "responder_column": {
            "description": "Each responder's string column holding the identifiers.",
            "type": "string",
            "minLength": 1,
        },
        "value_column": {
            "description": "intersection-sum only (required there): the responder's integer "
            "or decimal column summed over the intersection.",
            "type": "string",
            "minLength": 1,
        },
        "payload_columns": {
            "description": "intersection-payload only (required there): the responder's "
            "columns returned for every matched identifier.",
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_PAYLOAD_COLUMNS,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
        },
        "country": {
            "description": "Default calling code for phone numbers written nationally.",
            "enum": sorted(identifiers.COUNTRIES),
        },
        "min_group_size": {
            "description": "Raise the output policy's minimum group size (cardinality, "
            "intersection-sum); it can never lower the policy's.",
            "type": "integer",
            "minimum": 1,
            "maximum": INT_LIMIT,
        },
    },
    "allOf": [
        {
            "if": {"properties": {"mode": {"const": "intersection-sum"}}},
            "then": {"required": ["value_column"]},
            "else": {"not": {"required": ["value_column"]}},
        },
        {
            "if": {"properties": {"mode": {"const": "intersection-payload"}}},
            "then": {"required": ["payload_columns"]},
            "else": {"not": {"required": ["payload_columns"]}},
        },
    ],
}


# --------------------------------------------------------------------------- errors


class PsiError(Exception):
    """A PSI run that cannot finish; ``reason`` is the on-chain outcome name.

    ``detail`` never holds an identifier (at most ``identifiers.redact`` of one), because
    it ends up in logs and task outcomes.
    """

    def __init__(self, reason: str, detail: str, *, from_peer: bool = False) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown PSI failure reason {reason!r}")
        self.reason = reason
        self.detail = detail
        self.from_peer = from_peer  # a peer stopped first and said why
        super().__init__(f"{reason}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_restore_psi_error, (self.reason, self.detail, self.from_peer))


def _restore_psi_error(reason: str, detail: str, from_peer: bool) -> PsiError:
    return PsiError(reason, detail, from_peer=from_peer)


# ----------------------------------------------------------------------- parameters


def identifier_fields(raw: Mapping[str, Any]) -> tuple[str, str]:
    """``identifier_kind`` and ``country`` (default ``86``), checked: every algorithm
    that matches identifiers (PSI, and the federated tasks aligned by it) reads them
    so."""
    kind = raw["identifier_kind"]
    if kind not in identifiers.KINDS:
        raise InvalidParams(
            "identifier_kind", f"must be one of {list(identifiers.KINDS)}, got {kind!r}"
        )
    country = raw.get("country", "86")
    if not isinstance(country, str) or country not in identifiers.COUNTRIES:
        raise InvalidParams(
            "country",
            f"must be one of {sorted(identifiers.COUNTRIES)} (without '+'), got {country!r}",
        )
    return kind, country


@dataclass(frozen=True)
class PsiParams:
    """What to compute; built from JSON by :meth:`from_json`, which validates strictly."""

    mode: str
    identifier_kind: str
    requester_column: str
    responder_column: str
    value_column: str | None = None
    payload_columns: tuple[str, ...] = ()
    country: str = "86"
    min_group_size: int | None = None

    @property
    def epsilon(self) -> float | None:
        """No differential-privacy noise in PSI: the runner passes this to the policy."""
        return None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PsiParams:
        """Parse and validate; unknown keys, wrong types and mode mismatches are refused."""
        raw = json_object(raw, PARAMETER_SCHEMA)
        mode = raw["mode"]
        if mode not in MODES:
            raise InvalidParams("mode", f"must be one of {list(MODES)}, got {mode!r}")
        kind, country = identifier_fields(raw)
        requester_column = column_name("requester_column", raw["requester_column"])
        responder_column = column_name("responder_column", raw["responder_column"])

        value_column = raw.get("value_column")
        if mode == "intersection-sum":
            if value_column is None:
                raise InvalidParams("value_column", "is required for intersection-sum")
            value_column = column_name("value_column", value_column)
        elif "value_column" in raw:
            raise InvalidParams("value_column", "only intersection-sum takes a value column")

        payload = raw.get("payload_columns")
        payload_columns: tuple[str, ...] = ()
        if mode == "intersection-payload":
            if not isinstance(payload, list | tuple) or not payload:
                raise InvalidParams(
                    "payload_columns", "is required for intersection-payload: a non-empty list"
                )
            if len(payload) > MAX_PAYLOAD_COLUMNS:
                raise InvalidParams(
                    "payload_columns", f"at most {MAX_PAYLOAD_COLUMNS} columns, got {len(payload)}"
                )
            payload_columns = tuple(
                column_name(f"payload_columns[{i}]", c) for i, c in enumerate(payload)
            )
            if len(set(payload_columns)) != len(payload_columns):
                raise InvalidParams("payload_columns", "columns must be distinct")
        elif "payload_columns" in raw:
            raise InvalidParams(
                "payload_columns", "only intersection-payload takes payload columns"
            )

        min_group = min_group_size(raw)
        return cls(
            mode=mode,
            identifier_kind=kind,
            requester_column=requester_column,
            responder_column=responder_column,
            value_column=value_column,
            payload_columns=payload_columns,
            country=country,
            min_group_size=min_group,
        )

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (``from_json(p.to_json()) == p``); absent options omitted."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "identifier_kind": self.identifier_kind,
            "requester_column": self.requester_column,
            "responder_column": self.responder_column,
            "country": self.country,
        }
        if self.value_column is not None:
            out["value_column"] = self.value_column
        if self.payload_columns:
            out["payload_columns"] = list(self.payload_columns)
        if self.min_group_size is not None:
            out["min_group_size"] = self.min_group_size
        return out

    def check_responder_count(self, k: int) -> None:
        """Refuse a responder count the mode cannot run with (for the task creator).

        ``intersection-sum`` and ``intersection-payload`` are two-party protocols: with
        several responders the value holders' keys and ciphertexts would have to be
        combined, which this version does not do.
        """
        if not is_int(k) or not 1 <= k <= MAX_RESPONDERS:
            raise InvalidParams("responders", f"must be 1..{MAX_RESPONDERS} responders, got {k!r}")
        if self.mode in SINGLE_RESPONDER_MODES and k != 1:
            raise InvalidParams("mode", f"{self.mode} needs exactly one responder, got {k}")


Params = PsiParams


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class PayloadMatch:
    """One matched identifier and the responder's rows for it (sorted canonically)."""

    identifier: str
    rows: tuple[Mapping[str, int | str], ...]

    def to_json(self) -> dict[str, Any]:
        return {"identifier": self.identifier, "rows": [dict(r) for r in self.rows]}


@dataclass(frozen=True)
class PsiResult:
    """What the requester learns; ``None`` fields are suppressed or not part of the mode."""

    mode: str
    identifier_kind: str
    requester_items: int
    invalid_requester_rows: int
    responder_items: tuple[int, ...]
    min_group_size: int
    suppressed: bool
    cardinality: int | None
    intersection: tuple[str, ...] | None = None
    sum: str | None = None
    payload: tuple[PayloadMatch, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "identifierKind": self.identifier_kind,
            "requesterItems": self.requester_items,
            "invalidRequesterRows": self.invalid_requester_rows,
            "responderItems": list(self.responder_items),
            "minGroupSize": self.min_group_size,
            "suppressed": self.suppressed,
            "cardinality": self.cardinality,
            "intersection": None if self.intersection is None else list(self.intersection),
            "sum": self.sum,
            "payload": None if self.payload is None else [m.to_json() for m in self.payload],
        }


def _result(
    params: PsiParams,
    policy: EffectivePolicy,
    requester_items: int,
    invalid_rows: int,
    responder_items: Sequence[int],
    matched: Iterable[str] | None,
    count: int,
    total: int | None = None,
    scale: int = 0,
    payload: Sequence[PayloadMatch] | None = None,
) -> PsiResult:
    """The result from what was computed, with the policy applied: shared by the secure
    and plaintext paths, so both follow literally the same rules."""
    suppressed = params.mode in AGGREGATE_MODES and count < policy.min_group_size
    ids = None
    if params.mode not in AGGREGATE_MODES:
        ids = tuple(sorted(matched or ()))
        count = len(ids)
    text = None
    if params.mode == "intersection-sum" and not suppressed:
        if total is None:  # pragma: no cover - an internal error
            raise AssertionError("intersection-sum without a total")
        text = decimal_text(total, scale) if scale else str(total)
    return PsiResult(
        mode=params.mode,
        identifier_kind=params.identifier_kind,
        requester_items=requester_items,
        invalid_requester_rows=invalid_rows,
        responder_items=tuple(responder_items),
        min_group_size=policy.min_group_size,
        suppressed=suppressed,
        cardinality=None if suppressed else count,
        intersection=ids,
        sum=text,
        payload=None if payload is None else tuple(sorted(payload, key=lambda m: m.identifier)),
    )


# ------------------------------------------------------------------ local data work


def _find_column(
    table: pa.Table, columns: Sequence[Column], name: str, role: str, types: Sequence[str]
) -> Column:
    """The described column, checked against the table; DATASET_MISMATCH names it."""
    column = next((c for c in columns if c.name == name), None)
    if column is None or name not in table.column_names:
        raise PsiError("DATASET_MISMATCH", f"{role} column {name!r} is not in this dataset")
    if column.type not in types:
        raise PsiError(
            "DATASET_MISMATCH",
            f"{role} column {name!r} is {column.type}; it must be {' or '.join(types)}",
        )
    data = table.column(name)
    if data.type != arrow_type(column) or data.null_count:
        raise PsiError(
            "DATASET_MISMATCH",
            f"{role} column {name!r} does not hold {column.type} values without nulls "
            f"(Arrow type {data.type})",
        )
    return column


def _normalised(params: PsiParams, table: pa.Table, name: str) -> tuple[pa.Array, int]:
    """The column's normalised identifiers (null where refused) and how many were refused."""
    values, refused = identifiers.normalise_column(
        params.identifier_kind, table.column(name), country=params.country
    )
    return values, len(refused)


def _distinct_values(values: pa.Array) -> pa.Array:
    """The distinct normalised identifiers in order of first occurrence, kept as an Arrow
    array: a few bytes per identifier and no Python object each, so 10^7 of them stay
    small while the DH-PSI streams over them (:func:`_item_chunks`).

    By a stable sort rather than ``pc.unique``: the same values in the same order, but
    Arrow's hash table peaks at ~170 bytes per row where the sort needs ~60 (indices,
    one sorted copy), and this is the largest transient of a 10^7 run.
    """
    present: pa.Array = values.drop_null() if values.null_count else values
    if len(present) < 2:
        return present
    order = pc.array_sort_indices(present)  # stable: the first of equal rows comes first
    ordered = present.take(order)
    first = np.ones(len(ordered), dtype=np.bool_)
    later = pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    first[1:] = later.to_numpy(zero_copy_only=False)
    del ordered, later
    rows = np.sort(order.to_numpy()[first])
    distinct: pa.Array = present.take(pa.array(rows))
    return distinct


def _encoded(tag: bytes, values: pa.Array) -> list[bytes]:
    """``tag || value`` for each value (the tag may be empty)."""
    return [tag + str(v).encode() for v in values.to_pylist()]


def _item_chunks(
    params: PsiParams, distinct: pa.Array, size: int = ecdh_psi.CHUNK_ITEMS
) -> Iterator[list[bytes]]:
    """The items of :func:`_distinct_values`, ``size`` at a time: only the chunks in
    flight ever exist as ``bytes`` objects."""
    tag = identifiers.identifier_tag(params.identifier_kind)
    for start in range(0, len(distinct), size):
        yield _encoded(tag, distinct.slice(start, size))


def identifier_of(params: PsiParams, item: bytes) -> str:
    """The normalised identifier an item (``tag || normalised``) stands for."""
    return item[len(identifiers.identifier_tag(params.identifier_kind)) :].decode()


def identifier_items(
    params: PsiParams,
    table: pa.Table,
    columns: Sequence[Column],
    name: str,
    role: str,
    *,
    tagged: bool = True,
) -> tuple[list[bytes], int]:
    """One party's distinct items from its identifier column, and how many rows were
    refused by normalisation: what every PSI engine matches, so all match alike.

    Items are ``identifier_tag(kind) || normalised`` (the tag keeps kinds apart inside
    one hash); ``tagged=False`` gives the normalised values alone, for an engine that
    hashes its inputs itself and only ever matches one kind against the same kind
    (``psi_fast``), so the normalising and deduplicating rules still live here once.
    """
    _find_column(table, columns, name, role, ["string"])
    values, invalid = _normalised(params, table, name)
    tag = identifiers.identifier_tag(params.identifier_kind) if tagged else b""
    return _encoded(tag, _distinct_values(values)), invalid


def intersection_result(
    params: PsiParams,
    policy: EffectivePolicy,
    requester_items: int,
    invalid_rows: int,
    responder_items: Sequence[int],
    matched: Sequence[str],
) -> PsiResult:
    """An ``intersection`` result found by another engine, under this module's rules."""
    return _result(
        params, policy, requester_items, invalid_rows, responder_items, matched, len(matched)
    )


def _value_sums(
    params: PsiParams, table: pa.Table, column: Column, values: pa.Array
) -> dict[str, int]:
    """Per normalised identifier: the exact sum of the value column (scaled decimals)."""
    data = table.column(column.name)
    decimal = column.type == "decimal"
    scaled = decimal_unscaled(data).tolist() if decimal else data.to_pylist()
    sums: dict[str, int] = {}
    for ident, value in zip(values.to_pylist(), scaled, strict=True):
        if ident is not None:
            sums[ident] = sums.get(ident, 0) + int(value)
    for total in sums.values():
        if abs(total) >= _OFFSET:  # pragma: no cover - needs > 2^63 rows
            raise PsiError("DATASET_MISMATCH", f"a per-identifier sum exceeds {SUM_BITS} bits")
    return sums


def _payload_rows(
    params: PsiParams, table: pa.Table, columns: Sequence[Column], values: pa.Array
) -> dict[str, list[dict[str, int | str]]]:
    """Per normalised identifier: its rows' payload columns as in ``ImportedDataset.rows``
    (decimals as canonical text), sorted by their canonical JSON so the row order of the
    responder's table does not show."""
    described = {c.name: c for c in columns}
    selected = table.select(list(params.payload_columns))
    for i, name in enumerate(params.payload_columns):
        if described[name].type == "decimal":
            text = decimal_strings(selected.column(i), described[name].scale)
            selected = selected.set_column(i, name, text)
    rows: dict[str, list[dict[str, int | str]]] = {}
    for ident, row in zip(values.to_pylist(), selected.to_pylist(), strict=True):
        if ident is not None:
            rows.setdefault(ident, []).append(row)
    for group in rows.values():
        group.sort(key=_canonical)
    return rows


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------------------ plaintext reference


def plaintext_psi(
    params: PsiParams,
    requester_table: pa.Table,
    requester_columns: Sequence[Column],
    responder_tables: Sequence[tuple[pa.Table, Sequence[Column]]],
    policy: EffectivePolicy,
) -> PsiResult:
    """The reference: the same result from plain Python sets over normalised identifiers.

    What the tests and the demo compare a secure run against; it applies the same
    normalisation, column checks and output policy, and no cryptography.
    """
    k = len(responder_tables)
    _check_count(params, k)
    _find_column(
        requester_table, requester_columns, params.requester_column, "requester", ["string"]
    )
    mine, invalid = _normalised(params, requester_table, params.requester_column)
    x = {v for v in mine.to_pylist() if v is not None}
    _check_requester_size(params, len(x), policy)
    sets: list[set[str]] = []
    sums: dict[str, int] = {}
    scale = 0
    rows: dict[str, list[dict[str, int | str]]] = {}
    for table, columns in responder_tables:
        _responder_columns(params, table, columns)
        values, _ = _normalised(params, table, params.responder_column)
        sets.append({v for v in values.to_pylist() if v is not None})
        if params.mode == "intersection-sum":
            column = _find_column(table, columns, str(params.value_column), "value", _NUMERIC)
            sums, scale = _value_sums(params, table, column, values), column.scale
        if params.mode == "intersection-payload":
            rows = _payload_rows(params, table, columns, values)
    joint = set.intersection(*sets)
    matched = x & joint
    responder_items = [len(sets[0])] if k == 1 else [len(joint)]
    if params.mode == "intersection-sum":
        total = sum(sums[i] for i in matched)
        return _result(
            params, policy, len(x), invalid, responder_items, None, len(matched), total, scale
        )
    payload = None
    if params.mode == "intersection-payload":
        payload = [PayloadMatch(i, tuple(rows[i])) for i in matched]
    return _result(
        params, policy, len(x), invalid, responder_items, matched, len(matched), payload=payload
    )


_NUMERIC: Final = ("integer", "decimal")


def _responder_columns(params: PsiParams, table: pa.Table, columns: Sequence[Column]) -> None:
    """Every column a responder needs, checked before it sends anything."""
    _find_column(table, columns, params.responder_column, "responder", ["string"])
    if params.mode == "intersection-sum":
        _find_column(table, columns, str(params.value_column), "value", _NUMERIC)
    for name in params.payload_columns:
        _find_column(table, columns, name, "payload", ("integer", "string", "decimal"))


def _check_requester_size(params: PsiParams, n: int, policy: EffectivePolicy) -> None:
    """Responders refuse an aggregate over a requester set below the minimum group size:
    a count or sum over so few candidates would single them out."""
    if params.mode in AGGREGATE_MODES and n < policy.min_group_size:
        raise PsiError(
            "GROUP_TOO_SMALL",
            f"the requester's set has {n} identifiers, below the minimum group size "
            f"{policy.min_group_size}",
        )


def _check_count(params: PsiParams, k: int) -> None:
    try:
        params.check_responder_count(k)
    except InvalidParams as exc:
        raise PsiError("PROTOCOL_ERROR", str(exc)) from None


# ------------------------------------------------------------------------ transport


class _Session:
    """One party's view of a run: the channel, its limits, the worker pool, and which of
    its outgoing streams it has started (so a refusal reaches exactly the unstarted ones)."""

    def __init__(
        self,
        channel: Channel,
        timeout: float,
        executor: Executor | None,
        processes: int,
        planned: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.channel = channel
        self.timeout = timeout
        self.executor = executor
        self.processes = max(1, processes)
        self.planned = list(planned)
        self.started: set[tuple[str, str]] = set()
        # (peer, stream) -> index of the next chunk while a stream is being sent, None
        # once it is complete: a refusal must replace the header of a stream not begun,
        # or the next chunk of one begun (streams are sent as they are produced).
        self.streams: dict[tuple[str, str], int | None] = {}

    def send(self, peer: str, step: str, payload: bytes) -> None:
        self.started.add((peer, step))
        self.channel.send(peer, step, payload)

    def receive(self, peer: str, step: str) -> bytes:
        return self.channel.receive(peer, step, self.timeout)

    def refuse(self, reason: str) -> None:
        """Tell every peer still waiting for one of our streams that we stopped, and why:
        in place of the header of a stream not begun, or of the next chunk of a stream
        cut off part-way (the receiver checks every chunk for a refusal)."""
        body = _canonical({"refused": reason})
        for peer, step in self.planned:
            if (peer, step) not in self.streams:
                self.send(peer, f"{step}/head", body)
            else:
                index = self.streams[(peer, step)]
                if index is not None:
                    self.send(peer, f"{step}/{index}", body)


def _protocol(step: str, detail: str) -> PsiError:
    return PsiError("PROTOCOL_ERROR", f"{step}: {detail}")


def _json_message(payload: bytes, step: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _protocol(step, "not a JSON message") from None
    if not isinstance(value, dict):
        raise _protocol(step, "not a JSON object")
    return value


def _check_refusal(message: dict[str, Any], peer: str, step: str) -> None:
    """A peer's refusal becomes ours, with its reason (so the outcome names the cause)."""
    if set(message) == {"refused"}:
        reason = message["refused"]
        if reason not in REASONS:
            raise _protocol(step, "refusal with an unknown reason")
        raise PsiError(reason, f"{peer} stopped the task ({step})", from_peer=True)


@dataclass(frozen=True)
class _Head:
    chunks: int
    items: int


def _send_head(s: _Session, peer: str, step: str, items: int, chunks: int) -> None:
    s.send(peer, f"{step}/head", _canonical({"chunks": chunks, "items": items}))
    s.streams[(peer, step)] = 0 if chunks else None


def _receive_head(s: _Session, peer: str, step: str) -> _Head:
    message = _json_message(s.receive(peer, f"{step}/head"), f"{step}/head")
    _check_refusal(message, peer, step)
    chunks, items = message.get("chunks"), message.get("items")
    if (
        set(message) != {"chunks", "items"}
        or not is_int(chunks)
        or not is_int(items)
        or not 0 <= items <= MAX_STREAM_ITEMS
        or not (chunks == 0 if items == 0 else -(-items // STREAM_CHUNK_ITEMS) <= chunks <= items)
    ):
        raise _protocol(step, "malformed stream header")
    return _Head(chunks, items)


_REFUSAL_PREFIX: Final = b'{"refused":'
"""How a refusal (canonical JSON) begins. A chunk of keyed elements or digests starts
with these 11 bytes with probability 2^-88; were it so, the run would fail (never pass
a wrong result), as for any malformed chunk."""


def _chunk_items(width: int) -> int:
    return min(STREAM_CHUNK_ITEMS, MAX_MESSAGE_BYTES // width)


def _send_fixed(
    s: _Session,
    peer: str,
    step: str,
    pieces: Iterable[bytes],
    items: int,
    width: int,
    chunk_items: int | None = None,
) -> None:
    """Send a stream of ``items`` fixed-width records given as byte pieces of any size.

    The header goes first, before ``pieces`` is consumed, so a relay forwards it at once;
    each chunk goes as soon as it is full, so a stream made as it is sent (``pieces`` a
    generator) is never whole on this side. Should making it fail part-way, the
    session's refusal takes the place of the next chunk (:meth:`_Session.refuse`).
    """
    per = chunk_items or _chunk_items(width)
    _send_head(s, peer, step, items, -(-items // per))
    _send_body(s, peer, step, pieces, items, width, per)


def _send_body(
    s: _Session,
    peer: str,
    step: str,
    pieces: Iterable[bytes],
    items: int,
    width: int,
    per: int | None = None,
) -> None:
    """The chunks of a stream whose header :func:`_send_head` sent (possibly earlier)."""
    per = per or _chunk_items(width)
    chunks = -(-items // per)
    pending = bytearray()
    index = sent = 0
    for piece in pieces:
        pending += piece
        while len(pending) >= per * width:
            s.send(peer, f"{step}/{index}", bytes(pending[: per * width]))
            del pending[: per * width]
            index, sent = index + 1, sent + per
            s.streams[(peer, step)] = index if index < chunks else None
    if pending:
        s.send(peer, f"{step}/{index}", bytes(pending))
        sent += len(pending) // width
        s.streams[(peer, step)] = None
    if sent != items:  # pragma: no cover - an internal error, never a peer's
        raise AssertionError(f"{step}: sent {sent} records, announced {items}")


def _receive_chunks(s: _Session, peer: str, step: str, width: int, head: _Head) -> Iterator[bytes]:
    """The chunks of a fixed-width stream, each checked against the header; a refusal in
    place of a chunk (the sender failed part-way) is raised as the peer's."""
    per = _chunk_items(width)
    received = 0
    for index in range(head.chunks):
        chunk = s.receive(peer, f"{step}/{index}")
        if chunk.startswith(_REFUSAL_PREFIX):
            _check_refusal(_json_message(chunk, step), peer, step)
        count, rest = divmod(len(chunk), width)
        if rest or not 1 <= count <= per or received + count > head.items:
            raise _protocol(step, f"chunk {index} is malformed ({len(chunk)} bytes)")
        received += count
        yield chunk
    if received != head.items:
        raise _protocol(step, f"{received} records for {head.items} announced")


def _receive_fixed(s: _Session, peer: str, step: str, width: int) -> tuple[_Head, bytes]:
    head = _receive_head(s, peer, step)
    return head, b"".join(_receive_chunks(s, peer, step, width, head))


def _records(buffer: bytes, width: int) -> list[bytes]:
    return [buffer[i : i + width] for i in range(0, len(buffer), width)]


def _send_records(s: _Session, peer: str, step: str, records: Sequence[bytes]) -> None:
    """A stream of variable-length records (4-byte length prefix each)."""
    chunks: list[bytes] = []
    current = bytearray()
    count = 0
    for record in records:
        framed = len(record).to_bytes(4, "big") + record
        if len(framed) > _RECORD_BUDGET:
            raise PsiError("DATASET_MISMATCH", "one identifier's payload rows exceed 16 MB")
        if count == STREAM_CHUNK_ITEMS or len(current) + len(framed) > _RECORD_BUDGET:
            chunks.append(bytes(current))
            current, count = bytearray(), 0
        current += framed
        count += 1
    if current:
        chunks.append(bytes(current))
    _send_head(s, peer, step, len(records), len(chunks))
    for index, chunk in enumerate(chunks):
        s.send(peer, f"{step}/{index}", chunk)
    s.streams[(peer, step)] = None


def _receive_records(s: _Session, peer: str, step: str) -> list[bytes]:
    head = _receive_head(s, peer, step)
    out: list[bytes] = []
    for index in range(head.chunks):
        chunk = s.receive(peer, f"{step}/{index}")
        at, before = 0, len(out)
        while at < len(chunk):
            size = int.from_bytes(chunk[at : at + 4], "big")
            if at + 4 > len(chunk) or at + 4 + size > len(chunk):
                raise _protocol(step, f"chunk {index} has a truncated record")
            out.append(chunk[at + 4 : at + 4 + size])
            at += 4 + size
        if len(out) == before or len(out) - before > STREAM_CHUNK_ITEMS or len(out) > head.items:
            raise _protocol(step, f"chunk {index} holds a wrong number of records")
    if len(out) != head.items:
        raise _protocol(step, f"{len(out)} records for {head.items} announced")
    return out


# --------------------------------------------------------------------- curve work


def _blind(s: _Session, key: bytes, items: Sequence[bytes]) -> bytes:
    """``key * H(item)`` for each item, in order, as one buffer (on the pool if any)."""
    return b"".join(_blind_pieces(s, key, ecdh_psi.chunked(items)))


def _blind_pieces(s: _Session, key: bytes, chunks: Iterable[Sequence[bytes]]) -> Iterator[bytes]:
    """Streaming ``key * H(item)``: one concatenated piece per chunk of items, in order,
    made as the consumer asks for it (a stream is sent as it is produced)."""
    return ecdh_psi.iter_blind_buffers(key, chunks, s.processes, s.executor)


def _reblind_pieces(
    s: _Session, key: bytes, pieces: Iterable[bytes], step: str, *, digest: bool = False
) -> Iterator[bytes]:
    """Streaming ``key * element`` over a peer's fixed-width pieces (or, with ``digest``,
    the 12-byte digests of the results, made in the workers); a bad element is the
    peer's protocol error."""
    try:
        yield from ecdh_psi.iter_reblind_buffers(
            key, pieces, s.processes, s.executor, digest=digest
        )
    except ecdh_psi.EcdhPsiError as exc:
        raise _protocol(step, str(exc)) from None


def _reblind(s: _Session, key: bytes, buffer: bytes, step: str) -> bytes:
    return b"".join(_reblind_pieces(s, key, [buffer], step))


def _shuffle_rows(buffer: bytes, width: int) -> bytes:
    """A CSPRNG permutation of fixed-width rows (a sorted input's order must not leak)."""
    n = len(buffer) // width
    if n < 2:
        return buffer
    table = np.frombuffer(buffer, dtype=np.uint8).reshape(n, width)
    shuffled: bytes = table[ecdh_psi._csprng_permutation(n)].tobytes()
    return shuffled


def _shuffled(values: Sequence[_T]) -> list[_T]:
    order = ecdh_psi._csprng_permutation(len(values)) if len(values) > 1 else range(len(values))
    return [values[int(i)] for i in order]


def _common_rows(sets: Sequence[bytes]) -> bytes:
    """The 32-byte rows present in every set (each set's duplicates counted once)."""
    void = np.dtype((np.void, _ELEMENT))
    parts = [
        np.unique(np.frombuffer(b, dtype=np.uint8).reshape(-1, _ELEMENT).view(void).ravel())
        for b in sets
    ]
    values, counts = np.unique(np.concatenate(parts), return_counts=True)
    common: bytes = values[counts == len(sets)].tobytes()
    return common


def _map_chunks(
    s: _Session, work: Callable[..., list[_R]], args: tuple[Any, ...], chunks: Iterable[_T]
) -> Iterator[list[_R]]:
    """``work(*args, chunk)`` for each chunk, in order: on the pool with at most
    ``2 * processes`` in flight (memory stays flat), else inline."""
    if s.executor is None:
        for chunk in chunks:
            yield work(*args, chunk)
        return
    pending: deque[Future[list[_R]]] = deque()
    try:
        for chunk in chunks:
            pending.append(s.executor.submit(work, *args, chunk))
            if len(pending) >= 2 * s.processes:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _batches(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


# ---------------------------------------------------------------- pool workers (pure)


def _paillier_encrypt(n: int, values: Sequence[int]) -> list[int]:
    """Worker: Paillier encryptions (fresh randomness each) of ``values`` mod n."""
    public = phe.PaillierPublicKey(n)
    return [int(public.raw_encrypt(v % n)) for v in values]


def _oprf_blind(items: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """Worker: RFC 9497 Blind of each item: (blind, blinded element)."""
    return [oprf.blind(item) for item in items]


def _oprf_evaluate(sk: bytes, elements: Sequence[bytes]) -> list[bytes]:
    """Worker: BlindEvaluate; raises OprfError on a peer's bad element."""
    return [oprf.blind_evaluate(sk, e) for e in elements]


def _oprf_finalize(pairs: Sequence[tuple[bytes, bytes, bytes]]) -> list[bytes]:
    """Worker: Finalize of (input, blind, evaluated element)."""
    return [oprf.finalize(item, r, evaluated) for item, r, evaluated in pairs]


def _payload_records(sk: bytes, aad: bytes, entries: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """Worker: for each (item, padded plaintext): tag || ChaCha20-Poly1305 ciphertext
    under keys derived from F(item) = OPRF_sk(item)."""
    out = []
    for item, plaintext in entries:
        tag, key = _payload_keys(oprf.evaluate(sk, item))
        out.append(tag + ChaCha20Poly1305(key).encrypt(_NONCE, plaintext, aad))
    return out


def _payload_keys(prf_output: bytes) -> tuple[bytes, bytes]:
    """The lookup tag and the AEAD key of one identifier, from its OPRF output.

    Two HKDF expansions under distinct labels, so the tag (public) says nothing
    about the key.
    """
    tag = HKDF(hashes.SHA256(), TAG_BYTES, None, TAG_INFO).derive(prf_output)
    key = HKDF(hashes.SHA256(), 32, None, KEY_INFO).derive(prf_output)
    return tag, key


def _payload_aad(params: PsiParams) -> bytes:
    return PAYLOAD_AAD + _canonical(list(params.payload_columns))


# ------------------------------------------------------------------- entry points


def run_requester(
    channel: Channel,
    params: PsiParams,
    table: pa.Table,
    columns: Sequence[Column],
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    executor: Executor | None = None,
    processes: int = 1,
) -> PsiResult:
    """Run the requester's side (seat 0) and return its result.

    ``responders`` are the responders' names in seat order. ``executor`` (a pool from
    ``ecdh_psi.new_executor``) carries the curve and Paillier work; without one and with
    ``processes > 1`` a pool is made for this run and shut down after it.
    """
    k = len(responders)
    if channel.me in responders or len(set(responders)) != k:
        raise PsiError(
            "PROTOCOL_ERROR", "the responders must be distinct and exclude the requester"
        )
    _check_count(params, k)
    s = _Session(channel, timeout, executor, processes)
    try:
        _find_column(table, columns, params.requester_column, "requester", ["string"])
    except PsiError as exc:
        for r in responders:
            s.send(r, "psi/count", _canonical({"refused": exc.reason}))
        raise
    values, invalid = _normalised(params, table, params.requester_column)
    # The distinct identifiers stay one Arrow array (the input, compacted); the items
    # are made chunk by chunk as the blinding asks for them.
    distinct = _distinct_values(values)
    del values
    n = len(distinct)
    with _RunPool(s):
        # Every responder learns |X| directly, so each can apply the policy before it
        # does anything; the chain's own header must agree (checked by each hop).
        for r in responders:
            s.send(r, "psi/count", _canonical({"items": n}))
        # They will refuse a set this small; stop here rather than send it for nothing.
        _check_requester_size(params, n, policy)
        if params.mode == "intersection-payload":
            items = _encoded(identifiers.identifier_tag(params.identifier_kind), distinct)
            return _payload_requester(s, params, policy, items, invalid, responders[0])
        key = ecdh_psi.new_key()
        blinded = _blind_pieces(s, key, _item_chunks(params, distinct))
        if params.mode != "intersection-sum" and k == 1:
            # The one responder sends its own set before it reads ours, and needs nothing
            # of ours to make it: so key its set as it comes, then make ours as it reads
            # it. Each stream is consumed while it is produced instead of waiting whole
            # in a queue (32 bytes per item each way). Our header goes first, so it does
            # not wait for ours while it sends; the answer is then compared chunk by chunk.
            _send_head(s, responders[0], "psi/req/1", n, -(-n // _chunk_items(_ELEMENT)))
            try:
                peer = _peer_digests(s, key, responders[0])
            except PsiError as exc:
                # The responder will wait for our elements; a refusal takes their place.
                if not exc.from_peer:
                    s.planned = [(responders[0], "psi/req/1")]
                    s.refuse(exc.reason)
                raise
            _send_body(s, responders[0], "psi/req/1", blinded, n, _ELEMENT)
            return _dh_requester(s, params, policy, peer, distinct, invalid, responders[0])
        _send_fixed(s, responders[0], "psi/req/1", blinded, n, _ELEMENT)
        if params.mode == "intersection-sum":
            try:
                return _sum_requester(s, params, policy, key, n, invalid, responders[0])
            except PsiError as exc:
                # The responder waits for the masked total; tell it why none comes.
                if not exc.from_peer and (responders[0], "psi/sum/masked") not in s.started:
                    s.send(responders[0], "psi/sum/masked", _canonical({"refused": exc.reason}))
                raise
        # With k > 1 the combiner's joint set comes only after ours passed the chain.
        peer = _peer_digests(s, key, responders[-1])
        return _dh_requester(s, params, policy, peer, distinct, invalid, responders[-1])


class _RunPool:
    """Context: a pool for this run when asked for processes but given none."""

    def __init__(self, s: _Session) -> None:
        self.s = s
        self.own = s.executor is None and s.processes > 1

    def __enter__(self) -> None:
        if self.own:
            self.s.executor = ecdh_psi.new_executor(self.s.processes)

    def __exit__(self, *exc: object) -> None:
        if self.own and self.s.executor is not None:
            self.s.executor.shutdown(wait=True, cancel_futures=True)
            self.s.executor = None


@dataclass
class _PeerDigests:
    digests: ecdh_psi.DigestSet
    items: int  # as the stream header announced


def _peer_digests(s: _Session, key: bytes, combiner: str) -> _PeerDigests:
    """Apply ``a`` to the responders' (joint) set as it streams in, keeping only the
    12-byte digests (made in the workers)."""
    head = _receive_head(s, combiner, "psi/set")
    peer = ecdh_psi.DigestSet()
    keyed = _reblind_pieces(
        s, key, _receive_chunks(s, combiner, "psi/set", _ELEMENT, head), "psi/set", digest=True
    )
    for piece in keyed:
        peer.add_buffer(piece)
    return _PeerDigests(peer, head.items)


def _dh_requester(
    s: _Session,
    params: PsiParams,
    policy: EffectivePolicy,
    keyed: _PeerDigests,
    distinct: pa.Array,
    invalid: int,
    combiner: str,
) -> PsiResult:
    """Compare the answer with the peer's digests, chunk by chunk.

    What is held whole is the peer's digests (12 bytes each, one sorted array) and one
    boolean byte per own item for ``intersection`` (the matches are then picked out of
    ``distinct``, the answer being in its order), or only the matching digests for
    ``cardinality``.
    """
    n = len(distinct)
    peer = keyed.digests
    answer_head = _receive_head(s, combiner, "psi/answer")
    if answer_head.items != n:
        raise _protocol("psi/answer", f"{answer_head.items} digests for {n} items")
    answer = _receive_chunks(s, combiner, "psi/answer", _DIGEST, answer_head)
    if params.mode == "cardinality":
        count = peer.count_distinct_chunks(answer)
        return _result(params, policy, n, invalid, [keyed.items], None, count)
    hits = [peer.hits(chunk, "psi/answer") for chunk in answer]
    mask = np.concatenate(hits) if hits else np.zeros(0, dtype=np.bool_)
    matched: list[str] = distinct.filter(pa.array(mask)).to_pylist()
    return _result(params, policy, n, invalid, [keyed.items], matched, len(matched))


def _sum_requester(
    s: _Session,
    params: PsiParams,
    policy: EffectivePolicy,
    key: bytes,
    n_items: int,
    invalid: int,
    responder: str,
) -> PsiResult:
    """Sum the matched ciphertexts under the responder's Paillier key, masked, and have
    the responder open only the masked total (always, even when it will be suppressed)."""
    head = _receive_head(s, responder, "psi/set")
    n, scale = _paillier_key(s.receive(responder, "psi/sum/pk"))
    answer_head, answer = _receive_fixed(s, responder, "psi/answer", _DIGEST)
    if answer_head.items != n_items:
        raise _protocol("psi/answer", f"{answer_head.items} digests for {n_items} items")
    mine = ecdh_psi.DigestSet()
    mine.add_buffer(answer)
    matched: list[bool] = []
    keyed = _reblind_pieces(
        s, key, _receive_chunks(s, responder, "psi/set", _ELEMENT, head), "psi/set", digest=True
    )
    for piece in keyed:
        matched += mine.contains(_records(piece, _DIGEST), "psi/set")
    nsquare = n * n
    width = _ciphertext_width(n)
    ct_head = _receive_head(s, responder, "psi/sum/ct")
    if ct_head.items != head.items:
        raise _protocol("psi/sum/ct", f"{ct_head.items} ciphertexts for {head.items} elements")
    product = 1
    position = 0
    for chunk in _receive_chunks(s, responder, "psi/sum/ct", width, ct_head):
        for record in _records(chunk, width):
            if matched[position]:
                c = int.from_bytes(record, "big")
                if not 0 < c < nsquare:
                    raise _protocol("psi/sum/ct", f"ciphertext {position} is out of range")
                product = product * c % nsquare
            position += 1
    count = sum(matched)
    mask = secrets.randbelow(1 << MASK_BITS)
    masked = product * phe.PaillierPublicKey(n).raw_encrypt(_OFFSET + mask) % nsquare
    s.send(responder, "psi/sum/masked", masked.to_bytes(width, "big"))
    opened = s.receive(responder, "psi/sum/opened")
    if len(opened) != _modulus_width(n):
        raise _protocol("psi/sum/opened", "malformed opened sum")
    total = int.from_bytes(opened, "big") - _OFFSET - mask
    if abs(total) >= _OFFSET:
        raise _protocol("psi/sum/opened", "the opened sum is out of range")
    return _result(params, policy, n_items, invalid, [head.items], None, count, total, scale)


def _modulus_width(n: int) -> int:
    return (n.bit_length() + 7) // 8


def _ciphertext_width(n: int) -> int:
    return ((n * n).bit_length() + 7) // 8


def _paillier_key(message: bytes) -> tuple[int, int]:
    """The responder's Paillier modulus and value scale, checked for sanity."""
    data = _json_message(message, "psi/sum/pk")
    n_hex, scale = data.get("n"), data.get("scale")
    if set(data) != {"n", "scale"} or not isinstance(n_hex, str) or not is_int(scale):
        raise _protocol("psi/sum/pk", "malformed public key message")
    try:
        n = int(n_hex, 16)
    except ValueError:
        raise _protocol("psi/sum/pk", "malformed modulus") from None
    if not PAILLIER_BITS <= n.bit_length() <= 2 * PAILLIER_BITS or n % 2 == 0:
        raise _protocol("psi/sum/pk", f"the modulus must be an odd {PAILLIER_BITS}+ bit number")
    if not 0 <= scale <= 18:
        raise _protocol("psi/sum/pk", "scale out of range")
    return n, scale


def _payload_requester(
    s: _Session,
    params: PsiParams,
    policy: EffectivePolicy,
    items: Sequence[bytes],
    invalid: int,
    responder: str,
) -> PsiResult:
    """Learn F(x) by blind evaluation, then open the records whose tags match."""
    try:
        blinded = [
            p
            for chunk in _map_chunks(s, _oprf_blind, (), _batches(items, _OPRF_CHUNK))
            for p in chunk
        ]
    except oprf.OprfError as exc:  # an identifier beyond RFC 9497's 65535-byte inputs
        raise PsiError("DATASET_MISMATCH", f"an identifier cannot be evaluated: {exc}") from None
    _send_fixed(
        s, responder, "psi/opaque/req", [b"".join(b for _, b in blinded)], len(items), _ELEMENT
    )
    records = _receive_records(s, responder, "psi/payload")
    head, evaluated = _receive_fixed(s, responder, "psi/opaque/resp", _ELEMENT)
    if head.items != len(items):
        raise _protocol("psi/opaque/resp", f"{head.items} elements for {len(items)} items")
    triples = [
        (item, r, e)
        for item, (r, _), e in zip(items, blinded, _records(evaluated, _ELEMENT), strict=True)
    ]
    try:
        outputs = [
            f
            for chunk in _map_chunks(s, _oprf_finalize, (), _batches(triples, _OPRF_CHUNK))
            for f in chunk
        ]
    except oprf.OprfError as exc:
        raise _protocol("psi/opaque/resp", str(exc)) from None
    wanted: dict[bytes, tuple[bytes, bytes]] = {}
    for item, output in zip(items, outputs, strict=True):
        tag, key = _payload_keys(output)
        wanted[tag] = (item, key)
    aad = _payload_aad(params)
    seen: set[bytes] = set()
    matches: list[PayloadMatch] = []
    for position, record in enumerate(records):
        if len(record) < TAG_BYTES + 16:
            raise _protocol("psi/payload", f"record {position} is too short")
        tag = record[:TAG_BYTES]
        if tag in seen:
            raise _protocol("psi/payload", f"record {position} repeats a tag")
        seen.add(tag)
        if tag not in wanted:
            continue
        item, key = wanted[tag]
        try:
            plaintext = ChaCha20Poly1305(key).decrypt(_NONCE, record[TAG_BYTES:], aad)
        except InvalidTag:
            raise _protocol("psi/payload", f"record {position} does not decrypt") from None
        matches.append(
            PayloadMatch(identifier_of(params, item), _parse_rows(params, plaintext, position))
        )
    identifiers_ = [m.identifier for m in matches]
    return _result(
        params,
        policy,
        len(items),
        invalid,
        [len(records)],
        identifiers_,
        len(matches),
        payload=matches,
    )


def _parse_rows(
    params: PsiParams, plaintext: bytes, position: int
) -> tuple[dict[str, int | str], ...]:
    try:
        rows = json.loads(plaintext)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _protocol("psi/payload", f"record {position} is not JSON") from None
    wanted = set(params.payload_columns)
    if not isinstance(rows, list) or not rows:
        raise _protocol("psi/payload", f"record {position} holds no rows")
    for row in rows:
        if (
            not isinstance(row, dict)
            or set(row) != wanted
            or not all(isinstance(v, str) or is_int(v) for v in row.values())
        ):
            raise _protocol("psi/payload", f"record {position} holds a malformed row")
    return tuple(sorted(rows, key=_canonical))


def run_responder(
    channel: Channel,
    params: PsiParams,
    table: pa.Table,
    columns: Sequence[Column],
    requester: str,
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    executor: Executor | None = None,
    processes: int = 1,
) -> None:
    """Run one responder's side; returns once its last message is sent.

    Its own dataset is checked before anything is read or sent; a refusal (dataset,
    policy) or a peer's refusal is passed on to every peer still waiting for one of
    this party's streams, then raised as :class:`PsiError`.
    """
    k = len(responders)
    me = channel.me
    if me not in responders or requester in responders or len(set(responders)) != k:
        raise PsiError("PROTOCOL_ERROR", "this party must be one of distinct responders")
    _check_count(params, k)
    i = responders.index(me) + 1
    s = _Session(channel, timeout, executor, processes, _planned(params, i, requester, responders))
    try:
        _responder_columns(params, table, columns)
        count = _json_message(s.receive(requester, "psi/count"), "psi/count")
        _check_refusal(count, requester, "psi/count")
        n = count.get("items")
        if set(count) != {"items"} or not is_int(n) or not 0 <= n <= MAX_STREAM_ITEMS:
            raise _protocol("psi/count", "malformed count")
        _check_requester_size(params, n, policy)
        with _RunPool(s):
            if params.mode in SINGLE_RESPONDER_MODES:
                values, _ = _normalised(params, table, params.responder_column)
                if params.mode == "intersection-payload":
                    _payload_responder(s, params, table, columns, values, requester, n)
                else:
                    _sum_responder(s, params, table, columns, values, requester, n)
            else:
                _dh_responder(s, params, table, requester, responders, i, n)
    except PsiError as exc:
        s.refuse(exc.reason)
        raise


def _route(origin: int, k: int) -> list[int]:
    """The responders (1-based) a responder set visits, starting at its owner: every
    other non-combiner in cyclic order, then the combiner Rk."""
    if origin == k:
        return [k, *range(1, k), k]
    return [origin, *range(origin + 1, k), *range(1, origin), k]


def _planned(
    params: PsiParams, i: int, requester: str, responders: Sequence[str]
) -> list[tuple[str, str]]:
    """Every stream responder ``i`` would send: where a refusal must go."""
    k = len(responders)
    if params.mode == "intersection-payload":
        return [(requester, "psi/payload"), (requester, "psi/opaque/resp")]
    if params.mode == "intersection-sum":
        return [(requester, "psi/set"), (requester, "psi/sum/ct"), (requester, "psi/answer")]
    out: list[tuple[str, str]] = []
    if i == k:
        out += [(requester, "psi/set"), (requester, "psi/answer")]
    else:
        out.append((responders[i], f"psi/req/{i + 1}"))
    if k > 1:
        for origin in range(1, k + 1):
            route = _route(origin, k)
            for hop in range(len(route) - 1):
                if route[hop] == i and not (hop > 0 and i == k):
                    out.append((responders[route[hop + 1] - 1], f"psi/ring/{origin}/{hop + 1}"))
    return out


def _own_elements(
    s: _Session, params: PsiParams, table: pa.Table, key: bytes
) -> tuple[int, Iterator[bytes]]:
    """This responder's distinct items, shuffled, hashed and keyed: the count, and the
    keyed elements as pieces made while they are sent (only the shuffled Arrow array
    of identifiers is whole; the normalised column is let go here)."""
    values, _ = _normalised(params, table, params.responder_column)
    distinct = _distinct_values(values)
    del values
    if len(distinct) > 1:
        distinct = distinct.take(pa.array(ecdh_psi._csprng_permutation(len(distinct))))
    return len(distinct), _blind_pieces(s, key, _item_chunks(params, distinct))


def _dh_responder(
    s: _Session,
    params: PsiParams,
    table: pa.Table,
    requester: str,
    responders: Sequence[str],
    i: int,
    n: int,
) -> None:
    """One responder of the DH-PSI chain (see the module docstring).

    Work is done in order of hop number (the number of transfers a stream has made
    when it reaches this party), which is a deadlock-free order: a stream at hop h only
    waits for one at hop h-1 of another party, and every party finishes its hop-h
    work before its hop-(h+1) work. Sends never block (the transport queues them).
    """
    k = len(responders)
    key = ecdh_psi.new_key()
    size, own = _own_elements(s, params, table, key)
    if k == 1:
        _send_fixed(s, requester, "psi/set", own, size, _ELEMENT)
        _chain_step(s, params, key, requester, requester, 1, 1, n)
        return
    routes = {origin: _route(origin, k) for origin in range(1, k + 1)}
    first = routes[i][1]
    _send_fixed(s, responders[first - 1], f"psi/ring/{i}/1", own, size, _ELEMENT)
    work: list[tuple[int, int, int]] = [(i, 0, 0)]  # (hop, 0 = request chain, origin)
    for origin, route in routes.items():
        for hop in range(1, len(route)):
            if route[hop] == i:
                work.append((hop, 1, origin))
    arrived: list[bytes] = []
    previous = requester if i == 1 else responders[i - 2]
    for hop, what, origin in sorted(work):
        if what == 0:
            target = requester if i == k else responders[i]
            _chain_step(s, params, key, previous, target, i, k, n)
            continue
        route = routes[origin]
        sender = responders[route[hop - 1] - 1]
        step = f"psi/ring/{origin}/{hop}"
        _, buffer = _receive_fixed(s, sender, step, _ELEMENT)
        if i == k:
            # The combiner: sets of others get its key; its own came back keyed by all.
            arrived.append(buffer if origin == k else _reblind(s, key, buffer, step))
            continue
        keyed = _shuffle_rows(_reblind(s, key, buffer, step), _ELEMENT)
        target = responders[route[hop + 1] - 1]
        _send_fixed(
            s, target, f"psi/ring/{origin}/{hop + 1}", [keyed], len(keyed) // _ELEMENT, _ELEMENT
        )
    if i == k:
        joint = _shuffle_rows(_common_rows(arrived), _ELEMENT)
        _send_fixed(s, requester, "psi/set", [joint], len(joint) // _ELEMENT, _ELEMENT)


def _chain_step(
    s: _Session,
    params: PsiParams,
    key: bytes,
    previous: str,
    target: str,
    i: int,
    k: int,
    n: int,
) -> None:
    """Apply this responder's key to the requester's elements, keeping their order.

    A middle hop streams them on to the next responder; the combiner returns digests
    to the requester, shuffled where the mode discloses only a count or a sum.
    """
    step = f"psi/req/{i}"
    head = _receive_head(s, previous, step)
    if head.items != n:
        raise _protocol(step, f"{head.items} elements, but the requester announced {n}")
    chunks = _receive_chunks(s, previous, step, _ELEMENT, head)
    if i < k:
        _send_fixed(
            s, target, f"psi/req/{i + 1}", _reblind_pieces(s, key, chunks, step), n, _ELEMENT
        )
        return
    answer = _reblind_pieces(s, key, chunks, step, digest=True)
    if params.mode in AGGREGATE_MODES:
        # A shuffle needs the whole answer: 12 bytes per item, one buffer.
        answer = iter([ecdh_psi.shuffle_digest_buffer(b"".join(answer))])
    _send_fixed(s, target, "psi/answer", answer, n, _DIGEST)


def _sum_responder(
    s: _Session,
    params: PsiParams,
    table: pa.Table,
    columns: Sequence[Column],
    values: pa.Array,
    requester: str,
    n: int,
) -> None:
    """The value holder of intersection-sum: it learns |X| and nothing else."""
    column = _find_column(table, columns, str(params.value_column), "value", _NUMERIC)
    sums = _value_sums(params, table, column, values)
    tag = identifiers.identifier_tag(params.identifier_kind)
    pairs = _shuffled(list(sums.items()))
    public, private = phe.generate_paillier_keypair(n_length=PAILLIER_BITS)
    key = ecdh_psi.new_key()
    elements = _blind(s, key, [tag + ident.encode() for ident, _ in pairs])
    width = _ciphertext_width(public.n)
    s.send(requester, "psi/sum/pk", _canonical({"n": format(public.n, "x"), "scale": column.scale}))
    _send_fixed(s, requester, "psi/set", [elements], len(pairs), _ELEMENT)
    ciphertexts = (
        b"".join(c.to_bytes(width, "big") for c in chunk)
        for chunk in _map_chunks(
            s, _paillier_encrypt, (public.n,), _batches([v for _, v in pairs], _PAILLIER_CHUNK)
        )
    )
    _send_fixed(s, requester, "psi/sum/ct", ciphertexts, len(pairs), width)
    _chain_step(s, params, key, requester, requester, 1, 1, n)
    masked = s.receive(requester, "psi/sum/masked")
    if len(masked) != width:
        _check_refusal(_json_message(masked, "psi/sum/masked"), requester, "psi/sum/masked")
    c = int.from_bytes(masked, "big")
    if len(masked) != width or not 0 < c < public.nsquare:
        raise _protocol("psi/sum/masked", "malformed ciphertext")
    opened = int(private.raw_decrypt(c))
    if opened >= _MAX_OPENED:
        # Not a masked sum of our values: refuse to act as a decryption oracle.
        raise _protocol("psi/sum/masked", "the masked total is out of range")
    s.send(requester, "psi/sum/opened", opened.to_bytes(_modulus_width(public.n), "big"))


def _payload_responder(
    s: _Session,
    params: PsiParams,
    table: pa.Table,
    columns: Sequence[Column],
    values: pa.Array,
    requester: str,
    n: int,
) -> None:
    """The payload holder: encrypted rows under OPRF-derived keys, and blind evaluations."""
    sk = oprf.random_scalar()
    tag = identifiers.identifier_tag(params.identifier_kind)
    grouped = _payload_rows(params, table, columns, values)
    entries = []
    for ident, rows in _shuffled(list(grouped.items())):
        text = _canonical(rows)
        padded = text + b" " * (-len(text) % PAD_BYTES)
        entries.append((tag + ident.encode(), padded))
    try:
        records = [
            r
            for chunk in _map_chunks(
                s, _payload_records, (sk, _payload_aad(params)), _batches(entries, _OPRF_CHUNK)
            )
            for r in chunk
        ]
    except oprf.OprfError as exc:  # an identifier beyond RFC 9497's 65535-byte inputs
        raise PsiError("DATASET_MISMATCH", f"an identifier cannot be evaluated: {exc}") from None
    _send_records(s, requester, "psi/payload", records)
    head = _receive_head(s, requester, "psi/opaque/req")
    if head.items != n:
        raise _protocol("psi/opaque/req", f"{head.items} elements, but {n} were announced")
    blinded = b"".join(_receive_chunks(s, requester, "psi/opaque/req", _ELEMENT, head))
    try:
        evaluated = [
            e
            for chunk in _map_chunks(
                s, _oprf_evaluate, (sk,), _batches(_records(blinded, _ELEMENT), _OPRF_CHUNK)
            )
            for e in chunk
        ]
    except oprf.OprfError as exc:
        raise _protocol("psi/opaque/req", str(exc)) from None
    _send_fixed(s, requester, "psi/opaque/resp", [b"".join(evaluated)], n, _ELEMENT)


__all__ = [
    "EXTRA_SOURCES",
    "KIND",
    "MODES",
    "NAME",
    "OUTPUT_POLICY",
    "PARAMETER_SCHEMA",
    "PROTOCOL",
    "VERSION",
    "InvalidParams",
    "Params",
    "PayloadMatch",
    "PsiError",
    "PsiParams",
    "PsiResult",
    "identifier_fields",
    "plaintext_psi",
    "run_requester",
    "run_responder",
]
