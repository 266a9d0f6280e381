"""The OPRF inputs of anonymous lookups: which bytes a provider and a querier both evaluate.

Why this module exists: a provider publishing an entry and a querier asking about it
compute ``F(k, x)`` separately, through the threshold OPRF, and only meet in the union's
table; so ``x`` must be built by one rule on both sides, or a listed identifier silently
never matches. The rule also separates every list and query kind from every other one:
a phone number listed on the **blacklist** and the same number in the **lending** list
(or a card number with the same digits as a phone number) give unrelated PRF outputs, so
one union can never answer for another's list, and a hit in one says nothing about the
other.

Two shapes, both prefix-free (every variable part is length-prefixed, the list name
comes from a fixed set):

* **membership** ``x = "provnet-lookup:v1:" || list || 0x00 || identifier_tag(kind) ||
  len(value)(u16) || value`` for the blacklist, graylist, lending and card-opening lists
  (``value`` already normalised by ``node.algorithms.identifiers``);
* **element verification** ``x = "provnet-lookup:v1:verify" || 0x00 || identifier_tag(id
  kind) || len(id)(u16) || id || len(field)(u16) || field || identifier_tag(element
  kind) || len(element)(u16) || element``: a *composite key* of the subject's ID and one
  of its elements (name, phone, card, ...). A member lists one composite per element it
  holds for that ID; the asker evaluates the composite of the ID and the element it was
  given, so a hit is exactly "this member's record for this ID has this element" — one
  match bit per element, and the asker learns nothing about an element it did not guess.
  Every guess costs a metered query; that is what bounds guessing.
"""

from __future__ import annotations

import struct
from typing import Final

from node.algorithms.identifiers import identifier_tag, normalise

__all__ = [
    "ELEMENT_KINDS",
    "MEMBERSHIP_LISTS",
    "PREFIX",
    "VERIFY_LIST",
    "UnknownElementError",
    "UnknownListError",
    "element_head",
    "element_input",
    "frame",
    "membership_head",
    "membership_input",
    "verify_head",
]

PREFIX: Final = b"provnet-lookup:v1:"

MEMBERSHIP_LISTS: Final = ("blacklist", "graylist", "lending", "card-opening")
"""Lists answered by membership (listed or not, labels, multiplicity, event times):
``blacklist``/``graylist`` for account-opening checks and screening, ``lending`` and
``card-opening`` for multi-head counts over a time window."""

VERIFY_LIST: Final = "verify"

ELEMENT_KINDS: Final = {
    "name": "text",
    "phone": "phone",
    "card": "card",
    "email": "email",
    "national-id": "national-id",
}
"""Element fields of element verification and the identifier kind each is normalised as."""

_MAX_PART: Final = 0xFFFF


class UnknownListError(ValueError):
    """A list name outside ``MEMBERSHIP_LISTS``."""


class UnknownElementError(ValueError):
    """An element field outside ``ELEMENT_KINDS``."""


def frame(raw: bytes, what: str) -> bytes:
    """``len(raw)(u16) || raw``: the framing of every variable part."""
    if len(raw) > _MAX_PART:
        raise ValueError(f"{what} is {len(raw)} bytes; at most {_MAX_PART} are allowed")
    return struct.pack(">H", len(raw)) + raw


def _part(value: str, what: str) -> bytes:
    return frame(value.encode("utf-8"), what)


def membership_head(list_name: str, kind: str) -> bytes:
    """``x`` of a membership input up to the framed value: ``x = head || frame(value)``.

    Public so that a column reader (``listing``) can frame a whole normalised column at
    once instead of normalising row by row through :func:`membership_input`.
    """
    if list_name not in MEMBERSHIP_LISTS:
        raise UnknownListError(
            f"unknown lookup list {list_name!r}; expected one of {MEMBERSHIP_LISTS}"
        )
    return PREFIX + list_name.encode("ascii") + b"\x00" + identifier_tag(kind)


def verify_head(id_kind: str) -> bytes:
    """``x`` of an element input up to the framed subject ID."""
    return PREFIX + VERIFY_LIST.encode("ascii") + b"\x00" + identifier_tag(id_kind)


def element_head(field: str) -> bytes:
    """The part of an element input between the framed subject and the framed element."""
    element_kind = ELEMENT_KINDS.get(field)
    if element_kind is None:
        raise UnknownElementError(
            f"unknown element field {field!r}; expected one of {tuple(ELEMENT_KINDS)}"
        )
    return _part(field, "element field") + identifier_tag(element_kind)


def membership_input(list_name: str, kind: str, value: str, *, country: str = "86") -> bytes:
    """``x`` for ``value`` (raw; normalised here as ``kind``) on membership list ``list_name``.

    Raises ``UnknownListError``, or ``node.algorithms.identifiers``'
    ``UnknownIdentifierKind``/``InvalidIdentifier`` (redacted) for a value its kind refuses.
    """
    head = membership_head(list_name, kind)
    return head + _part(normalise(kind, value, country=country), f"{kind} identifier")


def element_input(
    id_kind: str, id_value: str, field: str, element: str, *, country: str = "86"
) -> bytes:
    """``x`` for "the record for ``id_value`` has ``element`` as its ``field``".

    Both the ID and the element are normalised (the element as ``ELEMENT_KINDS[field]``),
    so ``"138 0013 8000"`` and ``"+86 13800138000"`` verify alike.
    """
    between = element_head(field)
    subject = normalise(id_kind, id_value, country=country)
    value = normalise(ELEMENT_KINDS[field], element, country=country)
    return (
        verify_head(id_kind)
        + _part(subject, f"{id_kind} identifier")
        + between
        + _part(value, f"{field} element")
    )
