"""Canonical bytes and domain-separated digests: the one hashing rule of DESIGN.md §4.

Two parties that hash "the same" JSON value must get the same bytes, whatever their
JSON library, key insertion order or float formatting, or an honest digest comparison
fails (a node would refuse an approved algorithm, an auditor would flag an honest
anchor). RFC 8785 (JCS) fixes one serialisation; the ``rfc8785`` package implements it
and is used as is, because a hand-rolled serialiser would drift from the standard in the
corners (UTF-16 key order, ECMAScript number formatting) that matter most.

Every digest is domain-separated by a *kind*: ``sha256(b"provnet:<kind>:v1\\0" + data)``.
Without it, bytes hashed for one purpose (say a dataset row) could be presented as the
digest of another (an algorithm package or a log entry) whenever the two encodings can
collide, and a signature or on-chain anchor over one would silently vouch for the other.
The version tag lets an encoding change without old and new digests ever being equal.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, cast

import rfc8785

__all__ = ["CanonicalizationError", "canonical_json", "digest", "digest_json"]

# A kind is the domain-separation label. Restricting it to [a-z0-9-] keeps the prefix
# unambiguous: a ":" or NUL in a kind could make "a:v1\0" + data equal to the prefix of
# another kind followed by different data, which is exactly what separation must prevent.
_KIND = re.compile(r"[a-z0-9-]+")

# RFC 8785 numbers are IEEE-754 doubles; integers outside this range lose precision.
_INT_MAX = 2**53 - 1
_INT_MIN = -(2**53) + 1


class CanonicalizationError(ValueError):
    """A value that has no RFC 8785 form; ``path`` is its JSON Pointer when known."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


def canonical_json(obj: object) -> bytes:
    """The RFC 8785 (JCS) canonical UTF-8 encoding of a JSON-like Python value.

    Accepted: ``None``, ``bool``, ``int`` within the IEEE-754 safe range (|n| < 2**53),
    finite ``float``, ``str``, ``list``/``tuple`` and ``dict`` with ``str`` keys. Anything
    else raises :class:`CanonicalizationError` naming the offending value and where it
    sits (as a JSON Pointer), so a caller can fix the input instead of guessing.

    Integers beyond 2**53 are refused rather than rounded: two implementations would
    round differently or not at all, and the whole point is that everyone hashes the
    same bytes. Encode such values as strings.
    """
    try:
        return rfc8785.dumps(cast("Any", obj))
    except (ValueError, RecursionError) as exc:
        # Fast path first; only on failure walk the value to say where the problem is.
        # Besides its own CanonicalizationError (a ValueError), rfc8785 lets through a
        # UnicodeError when sorting keys with a lone surrogate, a plain ValueError when
        # formatting an integer of over 4300 digits for its error message, and a
        # RecursionError on cyclic or absurdly deep input.
        located = _locate_problem(obj)
        if located is not None:
            raise located from exc
        if isinstance(exc, RecursionError):
            raise CanonicalizationError("value is nested too deeply to canonicalise") from exc
        raise CanonicalizationError(f"cannot canonicalise value: {exc}") from exc


def digest(kind: str, data: bytes) -> bytes:
    """``sha256(b"provnet:" + kind + b":v1\\0" + data)``, 32 bytes.

    ``kind`` names what is being hashed (``"dataset-row"``, ``"algorithm"``...), so the
    digest of one kind of object can never be replayed as the digest of another kind:
    the same bytes under two kinds hash differently. It must be non-empty ASCII
    ``[a-z0-9-]``; anything else raises ``ValueError``. ``data`` must be ``bytes``
    (``TypeError`` otherwise): hashing ``str`` would need an implicit encoding choice.
    """
    if not isinstance(kind, str) or _KIND.fullmatch(kind) is None:
        raise ValueError(f"digest kind must be non-empty ASCII [a-z0-9-], got {kind!r}")
    if not isinstance(data, bytes):
        raise TypeError(f"digest data must be bytes, got {type(data).__name__}")
    h = hashlib.sha256(b"provnet:" + kind.encode("ascii") + b":v1\0")
    h.update(data)
    return h.digest()


def digest_json(kind: str, obj: object) -> bytes:
    """``digest(kind, canonical_json(obj))``: the digest of a JSON value, independent of
    key order and formatting."""
    return digest(kind, canonical_json(obj))


# A path from the root as a linked list (parent, token), so descending costs O(1) and the
# pointer text is only built for the one value that is reported.
_Path = tuple["_Path", str] | None


def _pointer(path: _Path) -> str:
    """RFC 6901 JSON Pointer for a path; the document root is shown as ``(root)``."""
    tokens: list[str] = []
    while path is not None:
        path, token = path
        tokens.append("/" + token.replace("~", "~0").replace("/", "~1"))
    return "".join(reversed(tokens)) or "(root)"


def _short(value: object) -> str:
    """A bounded description of a value for an error message; never raises."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        # repr of a huge int is slow and, past 4300 digits, itself a ValueError.
        return f"<{'negative ' if value < 0 else ''}int of {value.bit_length()} bits>"
    if isinstance(value, str | bytes):
        value = value[:61]
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _locate_problem(obj: object) -> CanonicalizationError | None:
    """Find the first value rfc8785 cannot encode and describe it with its path.

    Used only to explain a failure, so it mirrors rfc8785's acceptance rules rather
    than defining them; returns ``None`` if it finds nothing (the caller then reports
    rfc8785's own message).
    """
    active: set[int] = set()

    def walk(value: object, path: _Path) -> CanonicalizationError | None:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, int):
            if value < _INT_MIN or value > _INT_MAX:
                where = _pointer(path)
                return CanonicalizationError(
                    f"integer {_short(value)} at {where} is outside the IEEE-754 safe range "
                    f"[-(2**53-1), 2**53-1]; encode it as a string",
                    where,
                )
            return None
        if isinstance(value, float):
            if not math.isfinite(value):
                where = _pointer(path)
                return CanonicalizationError(
                    f"float {value!r} at {where} is not representable in JSON", where
                )
            return None
        if isinstance(value, str):
            return _check_str(value, "string", path)
        if isinstance(value, list | tuple | dict):
            if id(value) in active:
                where = _pointer(path)
                return CanonicalizationError(f"cyclic reference at {where}", where)
            active.add(id(value))
            try:
                if isinstance(value, dict):
                    for key, item in value.items():
                        if not isinstance(key, str):
                            where = _pointer(path)
                            return CanonicalizationError(
                                f"object key {_short(key)} ({type(key).__name__}) at {where} "
                                f"is not a string",
                                where,
                            )
                        problem = _check_str(key, "object key", path)
                        if problem is None:
                            problem = walk(item, (path, key))
                        if problem is not None:
                            return problem
                else:
                    for index, item in enumerate(value):
                        problem = walk(item, (path, str(index)))
                        if problem is not None:
                            return problem
            finally:
                active.discard(id(value))
            return None
        where = _pointer(path)
        return CanonicalizationError(
            f"unsupported type {type(value).__name__} at {where}: {_short(value)}", where
        )

    try:
        return walk(obj, None)
    except RecursionError:
        return None


def _check_str(text: str, what: str, path: _Path) -> CanonicalizationError | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        where = _pointer(path)
        return CanonicalizationError(
            f"{what} {_short(text)} at {where} contains a lone surrogate (not UTF-8)", where
        )
    return None
