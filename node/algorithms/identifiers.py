"""Identifier normalisation applied before PSI and anonymous lookups hash an identifier.

Two banks holding the same person under differently written identifiers (full-width
digits, spaces, ``+86`` vs ``0086`` vs a national trunk ``0``, a lower-case ``x``) must
hash to the same value, and two different identifiers must never do so. A hash of the raw
string gives neither guarantee, so every identifier goes through one documented rule per
kind (``docs/identifiers.md``), and anything the rule cannot read unambiguously is
refused by a named reason rather than guessed at: a wrong guess would be a false match
between two customers, which is worse than a missed one.

``normalise`` is the reference (scalar) rule. ``normalise_column`` is the same rule over a
column of 10^6-10^7 values: pyarrow compute and numpy handle the common shapes (ASCII or
full-width digits with the usual separators), and every row the fast path does not accept
outright is handed to ``normalise``, so the two agree by construction on the hard cases
and by test on the rest.

Errors never carry a whole identifier: ``InvalidIdentifier`` keeps only the last few
characters, because refusals end up in logs and task outcomes.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import idna
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

RULES_VERSION: Final = 1
"""Bumped whenever a rule changes, and part of every tag: hashes made under different
rules then never meet, instead of silently failing to match."""

KINDS: Final = ("national-id", "phone", "card", "email", "text")

BoolArray = npt.NDArray[np.bool_]


class Reason(StrEnum):
    """Why an identifier was refused; the names are part of the documented interface."""

    MISSING = "missing"  # a null in a column
    EMPTY = "empty"  # nothing left after trimming and removing separators
    CHARACTER = "bad-character"  # a letter or symbol the kind does not allow
    LENGTH = "bad-length"
    CHECK_DIGIT = "bad-check-digit"  # national ID: ISO 7064 MOD 11-2 mismatch
    LUHN = "bad-luhn"  # card: Luhn checksum fails
    NUMBER = "bad-number"  # phone: national number starts with 0 after the trunk prefix
    FORMAT = "bad-format"  # email: no local part / no domain / stray '@'
    DOMAIN = "bad-domain"  # email: the domain is not a valid IDNA host name


class UnknownIdentifierKind(ValueError):
    """A kind outside ``KINDS``: a caller's mistake, not a bad identifier."""


class InvalidIdentifier(ValueError):
    """An identifier the rules for its kind refuse.

    Only a redacted tail of the value is kept (never the whole identifier), so the
    exception can be logged and reported without disclosing the customer.
    """

    def __init__(self, kind: str, value: str, reason: Reason) -> None:
        self.kind = kind
        self.redacted = redact(value)
        self.reason = reason
        super().__init__(f"invalid {kind} identifier {self.redacted}: {reason.value}")

    def __reduce__(self) -> tuple[object, ...]:
        # Default pickling would call __init__ with the message; refusals cross process
        # boundaries (task runner workers), so rebuild from the redacted fields instead.
        return (_restore_invalid, (self.kind, self.redacted, self.reason))


def _restore_invalid(kind: str, redacted: str, reason: Reason) -> InvalidIdentifier:
    exc = InvalidIdentifier(kind, "", reason)
    exc.redacted = redacted
    exc.args = (f"invalid {kind} identifier {redacted}: {reason.value}",)
    return exc


def redact(value: str) -> str:
    """The value's last 4 characters, or fewer so that at most half of it is shown."""
    shown = min(4, len(value) // 2)
    return "***" + (value[-shown:] if shown else "")


def identifier_tag(kind: str) -> bytes:
    """Domain-separation prefix for hashing a normalised identifier of ``kind``.

    PSI hashes ``tag || value``, so a phone number and a card number with the same digits
    (or the same identifier under two rule versions) never produce the same element. The
    closing ``:`` keeps the tags prefix-free across versions too (``...:v1:`` is not a
    prefix of ``...:v10:``), which is what makes ``tag || value`` unambiguous.
    """
    _check_kind(kind)
    return f"provnet:id:{kind}:v{RULES_VERSION}:".encode("ascii")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UnknownIdentifierKind(f"unknown identifier kind {kind!r}; expected one of {KINDS}")


# --- shared character handling ------------------------------------------------------

# Full-width forms U+FF01..U+FF5E are ASCII shifted by 0xFEE0; U+3000 is the ideographic
# space. Numeric kinds fold exactly these (not general NFKC, which would also read "①"
# or "²" as digits, and whose tables differ between Unicode versions).
_FULLWIDTH: Final = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# Separators removed from numeric identifiers: whitespace, dashes, dots (and, for phones,
# brackets). Literal characters so that Python ``re`` and RE2 read the class identically.
_SPACES: Final = (
    "\t\n\x0b\x0c\r \u00a0" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
)
_DASHES: Final = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"


def _char_class(chars: str) -> str:
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in chars) + "]"


_ID_SEP: Final = _char_class(_SPACES + _DASHES + ".")
_PHONE_SEP: Final = _char_class(_SPACES + _DASHES + ".()[]")
_ID_SEP_RE: Final = re.compile(_ID_SEP)
_PHONE_SEP_RE: Final = re.compile(_PHONE_SEP)
_DIGITS_RE: Final = re.compile("[0-9]+")


def _fold(value: str) -> str:
    return value.translate(_FULLWIDTH)


# --- national-id ---------------------------------------------------------------------

_ID_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK: Final = "10X98765432"  # indexed by (weighted sum mod 11)


def id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a resident ID number's first 17 digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _national_id(value: str) -> str:
    s = _ID_SEP_RE.sub("", _fold(value)).replace("x", "X")
    if not s:
        raise InvalidIdentifier("national-id", value, Reason.EMPTY)
    if s.strip("0123456789X"):
        raise InvalidIdentifier("national-id", value, Reason.CHARACTER)
    if len(s) == 15:
        if "X" in s:
            raise InvalidIdentifier("national-id", value, Reason.CHARACTER)
        # Legacy (pre-1999) number: GB 11643-1999 upgraded it by inserting the century
        # "19" after the 6-digit area code and appending the check digit, so this is the
        # 18-digit number the same person holds today.
        s17 = s[:6] + "19" + s[6:]
        return s17 + id_check_digit(s17)
    if len(s) != 18:
        raise InvalidIdentifier("national-id", value, Reason.LENGTH)
    if "X" in s[:17]:
        raise InvalidIdentifier("national-id", value, Reason.CHARACTER)
    if id_check_digit(s[:17]) != s[17]:
        raise InvalidIdentifier("national-id", value, Reason.CHECK_DIGIT)
    return s


# --- phone ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Country:
    """Dialling facts for one country code: its national trunk prefix and the lengths of
    its national significant numbers (NSN, the digits after the country code)."""

    code: str
    trunk: str
    nsn_min: int
    nsn_max: int


COUNTRIES: Final = {
    c.code: c
    for c in (
        Country("86", "0", 10, 11),  # mainland China: mobile 11, landline area+subscriber 10-11
        Country("852", "", 8, 8),  # Hong Kong
        Country("853", "", 8, 8),  # Macau
        Country("886", "0", 8, 9),  # Taiwan
        Country("1", "1", 10, 10),  # NANP (trunk prefix 1)
        Country("44", "0", 9, 10),  # United Kingdom
        Country("65", "", 8, 8),  # Singapore
        Country("81", "0", 9, 10),  # Japan
    )
}
_E164_MAX: Final = 15  # digits, country code included (ITU-T E.164)
_E164_MIN: Final = 7  # for country codes outside COUNTRIES: shortest plausible number


def _country(country: str) -> Country:
    code = country.removeprefix("+")
    try:
        return COUNTRIES[code]
    except KeyError:
        raise ValueError(f"unsupported default country code {country!r}") from None


def _phone(value: str, country: str = "86") -> str:
    default = _country(country)
    s = _PHONE_SEP_RE.sub("", _fold(value))
    if not s:
        raise InvalidIdentifier("phone", value, Reason.EMPTY)
    if s.startswith("00"):
        s = "+" + s[2:]
    international = s.startswith("+")
    digits = s[1:] if international else s
    if not digits:
        raise InvalidIdentifier("phone", value, Reason.LENGTH)
    if not _DIGITS_RE.fullmatch(digits):
        raise InvalidIdentifier("phone", value, Reason.CHARACTER)
    if international:
        # Country codes are prefix-free, so at most one known code matches.
        known = [c for c in COUNTRIES.values() if digits.startswith(c.code)]
        if not known:
            if not _E164_MIN <= len(digits) <= _E164_MAX:
                raise InvalidIdentifier("phone", value, Reason.LENGTH)
            if digits[0] == "0":
                raise InvalidIdentifier("phone", value, Reason.NUMBER)
            return "+" + digits
        cc = known[0]
        nsn = digits[len(cc.code) :]
    else:
        cc, nsn = default, digits
    # One trunk prefix is dropped in both forms: "010 ..." nationally, and the common
    # "+86 (0)10 ..." internationally. No NSN of these countries starts with the trunk.
    if cc.trunk and nsn.startswith(cc.trunk):
        nsn = nsn[len(cc.trunk) :]
    if not cc.nsn_min <= len(nsn) <= cc.nsn_max or len(cc.code) + len(nsn) > _E164_MAX:
        raise InvalidIdentifier("phone", value, Reason.LENGTH)
    if nsn[0] == "0":
        raise InvalidIdentifier("phone", value, Reason.NUMBER)
    return "+" + cc.code + nsn


# --- card ----------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(value: str) -> str:
    s = _ID_SEP_RE.sub("", _fold(value))
    if not s:
        raise InvalidIdentifier("card", value, Reason.EMPTY)
    if not _DIGITS_RE.fullmatch(s):
        raise InvalidIdentifier("card", value, Reason.CHARACTER)
    if not 12 <= len(s) <= 19:
        raise InvalidIdentifier("card", value, Reason.LENGTH)
    if not luhn_valid(s):
        raise InvalidIdentifier("card", value, Reason.LUHN)
    return s


# --- email ---------------------------------------------------------------------------


def _email(value: str) -> str:
    s = value.strip().replace("\uff20", "@")  # full-width commercial at, from CJK input
    if not s:
        raise InvalidIdentifier("email", value, Reason.EMPTY)
    local, at, domain = s.rpartition("@")
    if not at or not local or not domain:
        raise InvalidIdentifier("email", value, Reason.FORMAT)
    quoted = len(local) >= 2 and local[0] == local[-1] == '"'
    if "@" in local and not quoted:
        raise InvalidIdentifier("email", value, Reason.FORMAT)
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in local) and not quoted:
        raise InvalidIdentifier("email", value, Reason.CHARACTER)
    if len(local.encode("utf-8")) > 64:
        raise InvalidIdentifier("email", value, Reason.LENGTH)
    # RFC 5321 leaves the local part's case to the receiving host, so it is kept as
    # written; the domain is case-insensitive and has exactly one ASCII (A-label) form.
    host = domain[:-1] if domain.endswith(".") else domain
    try:
        ascii_host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise InvalidIdentifier("email", value, Reason.DOMAIN) from None
    if not ascii_host or len(ascii_host) > 253 or "." not in ascii_host:
        raise InvalidIdentifier("email", value, Reason.DOMAIN)
    return local + "@" + ascii_host.lower()


# --- text ----------------------------------------------------------------------------


def _text(value: str) -> str:
    s = value
    # NFKC and casefold do not commute for a few characters; iterating to a fixed point
    # (in practice one or two rounds) makes the rule idempotent.
    for _ in range(4):
        t = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold())
        t = " ".join(t.split())
        if t == s:
            break
        s = t
    if not s:
        raise InvalidIdentifier("text", value, Reason.EMPTY)
    return s


_SCALAR: Final[dict[str, Callable[[str, str], str]]] = {
    "national-id": lambda v, c: _national_id(v),
    "phone": _phone,
    "card": lambda v, c: _card(v),
    "email": lambda v, c: _email(v),
    "text": lambda v, c: _text(v),
}


def normalise(kind: str, value: str, *, country: str = "86") -> str:
    """The canonical form of ``value`` as an identifier of ``kind``.

    ``country`` is the default country code for phone numbers written nationally.
    Raises ``InvalidIdentifier`` (with a ``Reason``) for a value the rules refuse.
    """
    _check_kind(kind)
    if kind == "phone":
        _country(country)
    return _SCALAR[kind](value, country)


# --- vectorised ----------------------------------------------------------------------
#
# The fast paths only need to be exact on the rows they accept: they remove a subset of
# the separators and fold a subset of the full-width forms the scalar rule does, then
# accept a row only if the result has the strict canonical shape. Anything else (tabs,
# Unicode dashes, other countries, 15-digit IDs, malformed values) goes to ``normalise``.

# Fast path result: candidate values (meaningful where ``ok``), the rows accepted, and the
# rows refused outright with a reason the scalar rule would give as well.
_Fast = tuple[pa.Array, BoolArray, list[tuple[BoolArray, Reason]]]
_CHUNK_ROWS: Final = 1 << 17  # below this a thread pool costs more than it saves


def _as_strings(values: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=pa.string())
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values


def _mask(arr: pa.Array) -> BoolArray:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _fold_column(arr: pa.Array, chars: str) -> pa.Array:
    """Full-width forms of ``chars`` to ASCII, touching only the non-ASCII rows."""
    nonascii = pc.invert(pc.string_is_ascii(arr)).fill_null(False)
    if not pc.any(nonascii).as_py():
        return arr
    sub = pc.filter(arr, nonascii)
    for ch in chars:
        full = chr(0x3000) if ch == " " else chr(ord(ch) + 0xFEE0)
        sub = pc.replace_substring(sub, full, ch)
    return pc.replace_with_mask(arr, nonascii, sub)


@dataclass(frozen=True)
class _Bytes:
    """A null-free string column as numpy: row offsets into one UTF-8 byte buffer."""

    array: pa.Array
    offsets: npt.NDArray[np.int64]
    data: npt.NDArray[np.uint8]

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)

    def columns(self, rows: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.int32]:
        """The digit values (byte - 48) of the given rows, each at most ``width`` bytes,
        right-aligned and left-padded with 0, as a (width, n) matrix. Gathered one column
        at a time so the index arrays stay the size of one column."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        out = np.zeros((width, len(rows)), dtype=np.int32)
        for j in range(width):
            idx = ends - (width - j)
            inside = idx >= starts
            if inside.all():
                out[j] = self.data[idx]
            else:
                out[j] = np.where(inside, self.data[np.where(inside, idx, 0)], 48)
            out[j] -= 48
        return out


def _translate(arr: pa.Array, delete: str, upper: str = "") -> _Bytes:
    """Delete the ASCII ``delete`` bytes and upper-case the ASCII ``upper`` letters, in one
    numpy pass over the bytes (ASCII bytes never occur inside a multi-byte UTF-8
    character, so the result stays valid UTF-8). Nulls become empty strings."""
    arr = arr.fill_null("")
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    lo, hi = int(offsets[0]), int(offsets[-1])
    raw = (
        np.frombuffer(bufs[2], dtype=np.uint8)[lo:hi]
        if bufs[2] is not None and hi > lo
        else np.zeros(0, dtype=np.uint8)
    )
    rel = offsets.astype(np.int64) - lo
    keep_table = np.ones(256, dtype=np.bool_)
    keep_table[[ord(c) for c in delete]] = False
    keep = keep_table[raw]
    # Each row's new offset: its old one minus the deleted bytes before it.
    deleted = np.flatnonzero(~keep)
    new_offsets = rel - np.searchsorted(deleted, rel) if len(deleted) else rel
    data = raw[keep] if len(deleted) else raw
    if upper:
        table = np.arange(256, dtype=np.uint8)
        table[[ord(c) for c in upper]] = [ord(c.upper()) for c in upper]
        data = table[data]
    out = pa.StringArray.from_buffers(
        n, pa.py_buffer(new_offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(data))
    )
    return _Bytes(out, new_offsets, data)


def _fast_national_id(arr: pa.Array, country: str) -> _Fast:
    b = _translate(_fold_column(arr, "0123456789Xx-. "), delete=" -.", upper="x")
    n = len(arr)
    rows = np.flatnonzero(b.lengths == 18)
    digits = b.columns(rows, 18)
    shaped = np.ones(len(rows), dtype=np.bool_)
    total = np.zeros(len(rows), dtype=np.int32)
    for j, weight in enumerate(_ID_WEIGHTS):
        shaped &= (digits[j] >= 0) & (digits[j] <= 9)
        total += digits[j] * weight
    last = np.where((digits[17] >= 0) & (digits[17] <= 9), digits[17], -1)
    last[digits[17] == ord("X") - 48] = 10  # not ':' (also 10 after subtracting '0')
    shaped &= last >= 0
    expected = (12 - total % 11) % 11
    ok = np.zeros(n, dtype=np.bool_)
    ok[rows[shaped & (expected == last)]] = True
    bad = np.zeros(n, dtype=np.bool_)
    bad[rows[shaped & (expected != last)]] = True
    return b.array, ok, [(bad, Reason.CHECK_DIGIT)]


def _fast_card(arr: pa.Array, country: str) -> _Fast:
    b = _translate(_fold_column(arr, "0123456789-. "), delete=" -.")
    n = len(arr)
    lengths = b.lengths
    rows = np.flatnonzero((lengths >= 12) & (lengths <= 19))
    digits = b.columns(rows, 19)
    shaped: BoolArray = np.asarray(((digits >= 0) & (digits <= 9)).all(axis=0))
    digits = np.where(shaped[None, :], digits, 0)
    doubled = digits[1::2] * 2  # positions 1, 3, ... from the right, as width is odd
    doubled -= np.where(doubled > 9, 9, 0)
    good = (digits[0::2].sum(axis=0) + doubled.sum(axis=0)) % 10 == 0
    ok = np.zeros(n, dtype=np.bool_)
    ok[rows[shaped & good]] = True
    bad = np.zeros(n, dtype=np.bool_)
    bad[rows[shaped & ~good]] = True
    return b.array, ok, [(bad, Reason.LUHN)]


def _fast_phone(arr: pa.Array, country: str) -> _Fast:
    cc = _country(country)
    s = _translate(_fold_column(arr, "0123456789+-.() "), delete=" -.()").array
    plus, zeros = "+" + cc.code, "00" + cc.code
    body = pc.if_else(
        pc.starts_with(s, plus),
        pc.utf8_slice_codeunits(s, len(plus)),
        pc.if_else(pc.starts_with(s, zeros), pc.utf8_slice_codeunits(s, len(zeros)), s),
    )
    if cc.trunk:
        body = pc.if_else(
            pc.starts_with(body, cc.trunk), pc.utf8_slice_codeunits(body, len(cc.trunk)), body
        )
    length = pc.binary_length(body)
    ok = pc.and_(
        pc.and_(pc.ascii_is_decimal(body), pc.invert(pc.starts_with(body, "0"))),
        pc.and_(pc.greater_equal(length, cc.nsn_min), pc.less_equal(length, cc.nsn_max)),
    )
    return pc.binary_join_element_wise(plus, body, ""), _mask(ok), []


_ASCII_SPACE_RUN: Final = "[\t\n\\x0b\\x0c\r\\x1c-\\x1f ]+"


def _fast_text(arr: pa.Array, country: str) -> _Fast:
    # ASCII is NFKC-stable and its casefold is its lower case; other rows go to Python.
    ascii_rows = pc.string_is_ascii(arr)
    s = pc.ascii_lower(arr)
    s = pc.replace_substring_regex(s, _ASCII_SPACE_RUN, " ")
    s = pc.utf8_trim(s, characters=" ")
    ok = pc.and_(ascii_rows, pc.greater(pc.binary_length(s), 0))
    return s, _mask(ok), []


def _fast_none(arr: pa.Array, country: str) -> _Fast:
    return arr, np.zeros(len(arr), dtype=np.bool_), []


_FAST: Final[dict[str, Callable[[pa.Array, str], _Fast]]] = {
    "national-id": _fast_national_id,
    "phone": _fast_phone,
    "card": _fast_card,
    "email": _fast_none,
    "text": _fast_text,
}


def _fast_parallel(kind: str, arr: pa.Array, country: str) -> _Fast:
    """The fast path over slices on all cores (pyarrow and numpy release the GIL)."""
    fast = _FAST[kind]
    workers = os.cpu_count() or 1
    if len(arr) < 2 * _CHUNK_ROWS or workers == 1:
        return fast(arr, country)
    step = max(_CHUNK_ROWS, -(-len(arr) // (4 * workers)))
    pieces = [arr.slice(i, step) for i in range(0, len(arr), step)]
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda piece: fast(piece, country), pieces))
    candidate = pa.concat_arrays([p[0] for p in parts])
    ok = np.concatenate([p[1] for p in parts])
    refused = [
        (np.concatenate([p[2][j][0] for p in parts]), reason)
        for j, (_, reason) in enumerate(parts[0][2])
    ]
    return candidate, ok, refused


def normalise_column(
    kind: str,
    values: pa.Array | pa.ChunkedArray | Sequence[str | None],
    *,
    country: str = "86",
) -> tuple[pa.Array, list[tuple[int, str]]]:
    """``normalise`` over a column: the normalised strings (null where refused) and the
    refused rows as ``(row, reason)``, in row order. Nulls are refused as ``missing``."""
    _check_kind(kind)
    if kind == "phone":
        _country(country)
    arr = _as_strings(values)
    n = len(arr)
    candidate, ok, refused = _fast_parallel(kind, arr, country)
    missing = _mask(arr.is_null())
    ok &= ~missing
    reason_of: dict[int, str] = {int(i): Reason.MISSING.value for i in np.flatnonzero(missing)}
    handled = ok | missing
    for mask, reason in refused:
        for i in np.flatnonzero(mask & ~missing):
            reason_of[int(i)] = reason.value
        handled |= mask
    slow_rows = np.flatnonzero(~handled)
    slow_values: list[str | None] = []
    scalar = _SCALAR[kind]
    for i, value in zip(slow_rows, arr.take(pa.array(slow_rows)).to_pylist(), strict=True):
        try:
            slow_values.append(scalar(value, country))
        except InvalidIdentifier as exc:
            slow_values.append(None)
            reason_of[int(i)] = exc.reason.value
    out = pc.if_else(pa.array(ok), candidate, pa.nulls(n, pa.string()))
    if len(slow_rows):
        slow_mask = np.zeros(n, dtype=np.bool_)
        slow_mask[slow_rows] = True
        out = pc.replace_with_mask(out, pa.array(slow_mask), pa.array(slow_values, pa.string()))
    return out, sorted(reason_of.items())
