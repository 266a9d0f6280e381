"""JSON forms of a result statement and a destruction receipt.

They travel from the host to every data owner and, inside the creator's ``task result``
answer, to the auditor: parties that trust none of the host's words and check every
signature themselves. Parsing is therefore strict (exact keys, exact lengths) and fails
with ``ValueError`` naming the field, which callers turn into a named refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.tee.provision import DestructionReceipt, ResultStatement

__all__ = ["receipt_from_json", "receipt_to_json", "statement_from_json", "statement_to_json"]

_STATEMENT_KEYS = {"task", "measurement", "algorithmDigest", "inputs", "outputDigest", "signature"}
_RECEIPT_KEYS = {"task", "measurement", "erasedInputs", "keysErased", "erasedAt", "signature"}
_MAX_INPUTS = 64


def _object(doc: object, what: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping) or set(doc) != keys:
        raise ValueError(f"{what} must be an object with exactly {sorted(keys)}")
    return doc


def _hex(doc: Mapping[str, Any], name: str, what: str, length: int) -> bytes:
    value = doc[name]
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != length:
        raise ValueError(f"{what}.{name} must be {length} bytes as hex")
    return raw


def _digests(doc: Mapping[str, Any], name: str, what: str) -> tuple[bytes, ...]:
    values = doc[name]
    if not isinstance(values, list) or len(values) > _MAX_INPUTS:
        raise ValueError(f"{what}.{name} must be a list of at most {_MAX_INPUTS} digests")
    return tuple(_hex({name: v}, name, what, 32) for v in values)


def statement_to_json(statement: ResultStatement) -> dict[str, Any]:
    return {
        "task": statement.task_id.hex(),
        "measurement": statement.measurement.hex(),
        "algorithmDigest": statement.algorithm_digest.hex(),
        "inputs": [d.hex() for d in statement.input_digests],
        "outputDigest": statement.output_digest.hex(),
        "signature": statement.signature.hex(),
    }


def statement_from_json(doc: object) -> ResultStatement:
    what = "result statement"
    d = _object(doc, what, _STATEMENT_KEYS)
    return ResultStatement(
        task_id=_hex(d, "task", what, 32),
        measurement=_hex(d, "measurement", what, 32),
        algorithm_digest=_hex(d, "algorithmDigest", what, 32),
        input_digests=_digests(d, "inputs", what),
        output_digest=_hex(d, "outputDigest", what, 32),
        signature=_hex(d, "signature", what, 64),
    )


def receipt_to_json(receipt: DestructionReceipt) -> dict[str, Any]:
    return {
        "task": receipt.task_id.hex(),
        "measurement": receipt.measurement.hex(),
        "erasedInputs": [d.hex() for d in receipt.erased_input_digests],
        "keysErased": receipt.keys_erased,
        "erasedAt": receipt.erased_at,
        "signature": receipt.signature.hex(),
    }


def receipt_from_json(doc: object) -> DestructionReceipt:
    what = "destruction receipt"
    d = _object(doc, what, _RECEIPT_KEYS)
    keys_erased, erased_at = d["keysErased"], d["erasedAt"]
    if not isinstance(keys_erased, bool):
        raise ValueError(f"{what}.keysErased must be true or false")
    if isinstance(erased_at, bool) or not isinstance(erased_at, int) or erased_at < 0:
        raise ValueError(f"{what}.erasedAt must be a non-negative integer (Unix seconds)")
    return DestructionReceipt(
        task_id=_hex(d, "task", what, 32),
        measurement=_hex(d, "measurement", what, 32),
        erased_input_digests=_digests(d, "erasedInputs", what),
        keys_erased=keys_erased,
        erased_at=erased_at,
        signature=_hex(d, "signature", what, 64),
    )
