"""The lookup OPRF inputs: one rule on both sides, and no two lists or kinds ever meet."""

from __future__ import annotations

import itertools

import pytest

from node.algorithms.identifiers import InvalidIdentifier, UnknownIdentifierKind
from node.lookup import inputs
from node.lookup.inputs import (
    ELEMENT_KINDS,
    MEMBERSHIP_LISTS,
    UnknownElementError,
    UnknownListError,
    element_input,
    membership_input,
)

PHONE = "13800138000"
ID = "11010519491231002X"


@pytest.mark.parametrize("written", ["138 0013 8000", "+86 138-0013-8000", "0086 13800138000"])
def test_differently_written_identifiers_give_one_input(written: str) -> None:
    assert membership_input("blacklist", "phone", written) == membership_input(
        "blacklist", "phone", PHONE
    )


def test_lists_and_kinds_are_separated() -> None:
    """A number listed for lending never answers a blacklist query, and a card with the
    digits of a phone number is a different input."""
    card = "4111111111111111"
    made = [membership_input(lst, "phone", PHONE) for lst in MEMBERSHIP_LISTS]
    made += [membership_input(lst, "card", card) for lst in MEMBERSHIP_LISTS]
    made += [membership_input(lst, "text", card) for lst in MEMBERSHIP_LISTS]
    assert len(set(made)) == len(made)


def test_element_inputs_are_per_id_and_field_and_never_a_membership_input() -> None:
    made = {
        element_input("national-id", subject, field, value)
        for subject in (ID, "110105198001010016")
        for field, value in (("phone", PHONE), ("name", "Li Lei"), ("email", "li@example.cn"))
    }
    assert len(made) == 6
    membership = {membership_input(lst, "phone", PHONE) for lst in MEMBERSHIP_LISTS}
    assert not made & membership
    assert element_input("national-id", ID.lower(), "phone", "+86 138 0013 8000") == (
        element_input("national-id", ID, "phone", PHONE)
    )


def test_length_prefixes_keep_composites_unambiguous() -> None:
    """Moving characters between the name field's parts must change the input."""
    pairs = [("Li", "Lei Wang"), ("Li Lei", "Wang"), ("Li Lei Wang", "")]
    made = []
    for left, right in pairs:
        name = f"{left} {right}".strip()
        made.append(element_input("text", left or "x", "name", name))
    assert len(set(made)) == len(made)
    # and no element input is a prefix of another
    for a, b in itertools.permutations(made, 2):
        assert not b.startswith(a)


def test_every_element_field_has_a_known_kind() -> None:
    for field, kind in ELEMENT_KINDS.items():
        assert kind in ("text", "phone", "card", "email", "national-id"), field


def test_bad_input_is_named() -> None:
    with pytest.raises(UnknownListError, match="whitelist"):
        membership_input("whitelist", "phone", PHONE)
    with pytest.raises(UnknownElementError, match="address"):
        element_input("national-id", ID, "address", "1 Main St")
    with pytest.raises(UnknownIdentifierKind):
        membership_input("blacklist", "passport", "E1234567")
    with pytest.raises(InvalidIdentifier) as exc:
        membership_input("blacklist", "national-id", "110105194912310021")
    assert "110105194912310021" not in str(exc.value)
    with pytest.raises(ValueError, match="at most"):
        membership_input("blacklist", "text", "x" * (0x10000 + 1))
    assert inputs.PREFIX.endswith(b":")
