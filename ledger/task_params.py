"""The on-chain commitment to a task's parameters: salted, so the chain does not leak them.

A task's parameters stay off chain, but `TaskRegistry` stores a digest of them so every
participant (and later the auditor) can check it was given exactly what the creator
committed to. An unsalted digest would be a dictionary attack waiting to happen: a
filter such as ``account == X`` is recovered from the chain by hashing a few thousand
guessed account ids. So the creator draws a fresh 32-byte salt per task and commits to
``digest("task-params", {"params": ..., "salt": ...})``; the salt travels with the
parameters to the participants, and a regulator who is shown both recomputes the digest.

The envelope ``{"params": {...}, "salt": "<64 hex>"}`` is the one form in which
parameters are sent, stored and disclosed; it lives in `ledger/` because both the nodes
and the auditor read it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.canonical import digest_json
from ledger.ids import InvalidInput

SALT_BYTES = 32


@dataclass(frozen=True)
class ParamsEnvelope:
    params: Mapping[str, Any]
    salt: bytes

    @classmethod
    def new(cls, params: Mapping[str, Any]) -> ParamsEnvelope:
        return cls(dict(params), secrets.token_bytes(SALT_BYTES))

    @classmethod
    def from_json(cls, data: object, field: str = "params") -> ParamsEnvelope:
        """Parse ``{"params": {...}, "salt": "<64 hex>"}``, naming what is wrong."""
        if not isinstance(data, Mapping) or set(data) != {"params", "salt"}:
            raise InvalidInput(field, 'expected {"params": {...}, "salt": "<64 hex digits>"}')
        params, salt = data["params"], data["salt"]
        if not isinstance(params, Mapping):
            raise InvalidInput(f"{field}.params", "must be a JSON object")
        if not isinstance(salt, str) or len(salt) != 2 * SALT_BYTES:
            raise InvalidInput(f"{field}.salt", f"must be {2 * SALT_BYTES} hex digits")
        try:
            raw = bytes.fromhex(salt)
        except ValueError:
            raise InvalidInput(f"{field}.salt", "is not hexadecimal") from None
        return cls(dict(params), raw)

    def to_json(self) -> dict[str, Any]:
        return {"params": dict(self.params), "salt": self.salt.hex()}

    @property
    def digest(self) -> bytes:
        return params_commitment(self.params, self.salt)


def params_commitment(params: Mapping[str, Any], salt: bytes) -> bytes:
    """What `TaskRegistry` stores as a task's ``paramsDigest``."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, got {len(salt)}")
    return digest_json("task-params", {"params": dict(params), "salt": salt.hex()})
