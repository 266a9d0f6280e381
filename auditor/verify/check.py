"""A check's verdict and the guard that keeps hostile evidence from crashing a check.

Every check returns a `Check`: its name, a verdict (pass, fail or not-applicable), a
sentence saying why, and the evidence it used, so a regulator can see what a verdict
rests on and rerun any single check. Evidence (event arguments, transcripts, proofs)
comes from parties the auditor does not trust: a digest of the wrong length, a proof
that is not a list of hashes or a field that is missing must turn into a *failed*
check naming what was malformed, never into an exception that stops the report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec

PASS = "pass"
FAIL = "fail"
NOT_APPLICABLE = "not-applicable"
STATUSES = (PASS, FAIL, NOT_APPLICABLE)


@dataclass(frozen=True)
class Check:
    """One named verdict. ``passed`` is kept for callers that only ask "did it fail?":
    a not-applicable check did not fail, so ``passed`` is true for it and ``status``
    tells the two apart."""

    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", PASS if self.passed else FAIL)
        if self.status not in STATUSES:
            raise ValueError(f"check status must be one of {STATUSES}, got {self.status!r}")
        if (self.status == FAIL) == bool(self.passed):
            raise ValueError(f"check {self.name}: status {self.status} contradicts passed")

    @classmethod
    def not_applicable(
        cls, name: str, detail: str, evidence: dict[str, Any] | None = None
    ) -> Check:
        """Nothing for this check to judge (e.g. no failure to authorise)."""
        return cls(name, True, detail, dict(evidence or {}), NOT_APPLICABLE)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "detail": self.detail,
            "evidence": self.evidence,
        }


class Malformed(ValueError):
    """A piece of evidence is not what it must be (a 32-byte digest, a list of hashes)."""


DIGEST_SIZE = 32


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"the string {shown!r}"
    return f"a {type(value).__name__}"


def digest32(value: object, what: str) -> bytes:
    """``value`` as a 32-byte digest (bytes, or a ``0x``-prefixed hex string), or
    `Malformed` naming ``what`` and what it was instead."""
    if isinstance(value, bytes | bytearray):
        if len(value) == DIGEST_SIZE:
            return bytes(value)
    elif isinstance(value, str) and value.startswith("0x") and len(value) == 2 + 2 * DIGEST_SIZE:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise Malformed(f"{what} is not a 32-byte digest ({_describe(value)})")


def maybe_bytes(value: object) -> bytes | None:
    """``value`` as bytes when it is bytes-like or ``0x`` hex, else None: for filtering
    events by id without letting one malformed event abort the whole history."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return None
    return None


P = ParamSpec("P")
#: What hostile evidence can raise inside a check: missing fields, wrong types, bad hex.
_MALFORMED = (Malformed, KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError)


def guarded(name: str) -> Callable[[Callable[P, Check]], Callable[P, Check]]:
    """Turn malformed evidence met inside a check into that check's failure."""

    def wrap(check: Callable[P, Check]) -> Callable[P, Check]:
        @functools.wraps(check)
        def run(*args: P.args, **kwargs: P.kwargs) -> Check:
            try:
                return check(*args, **kwargs)
            except _MALFORMED as exc:
                why = str(exc) if isinstance(exc, Malformed) else f"{type(exc).__name__}: {exc}"
                return Check(name, False, f"malformed evidence: {why}", {"malformed": why})

        return run

    return wrap
