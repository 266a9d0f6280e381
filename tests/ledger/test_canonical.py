"""Tests for ledger.canonical: RFC 8785 canonical JSON and domain-separated digests."""

from __future__ import annotations

import decimal
import hashlib
import json
import math
import struct
import sys
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import CanonicalizationError, canonical_json, digest, digest_json

# --- RFC 8785 examples --------------------------------------------------------------------

# RFC 8785 §3.2.2: the example input, as JSON text exactly as printed in the RFC.
RFC_3_2_2_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""

# RFC 8785 §3.2.4: its canonical form, as the UTF-8 bytes printed in the RFC.
RFC_3_2_4_HEX = """
7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d
"""

# RFC 8785 §3.2.3: property sorting by UTF-16 code units.
RFC_3_2_3_INPUT = r"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""


def test_rfc8785_section_3_2_4_example_bytes() -> None:
    canonical = canonical_json(json.loads(RFC_3_2_2_INPUT))
    assert canonical == bytes.fromhex("".join(RFC_3_2_4_HEX.split()))
    assert canonical.decode() == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_rfc8785_section_3_2_3_sorting_example() -> None:
    canonical = canonical_json(json.loads(RFC_3_2_3_INPUT))
    # The RFC lists the values in canonical order. Note the emoji (UTF-16 D83D DE00)
    # sorts before U+FB33, unlike code-point order.
    values = [v for _, v in json.loads(canonical, object_pairs_hook=lambda kv: kv)]
    assert values == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonical == expected.encode("utf-8")


# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    assert canonical_json(_double(bits)) == expected.encode()
    assert canonical_json([_double(bits)]) == b"[" + expected.encode() + b"]"


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_rfc8785_appendix_b_non_finite_rejected(bits: str) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(_double(bits))


# --- canonical form -----------------------------------------------------------------------


def test_no_whitespace_and_sorted_keys_at_every_level() -> None:
    value = {"b": [1, {"z": None, "a": True}], "a": "x"}
    assert canonical_json(value) == b'{"a":"x","b":[1,{"a":true,"z":null}]}'


def test_insertion_order_does_not_matter() -> None:
    a = {"x": 1, "y": {"p": [1, 2], "q": "s"}}
    b = OrderedDict([("y", OrderedDict([("q", "s"), ("p", [1, 2])])), ("x", 1)])
    assert canonical_json(a) == canonical_json(b)


def test_tuples_are_arrays_and_scalars_encode() -> None:
    assert canonical_json((1, "a", None)) == b'[1,"a",null]'
    assert canonical_json([]) == b"[]"
    assert canonical_json({}) == b"{}"
    assert canonical_json(True) == b"true"
    assert canonical_json(-0.0) == b"0"
    assert canonical_json(1.0) == b"1"


def test_strings_escape_only_what_jcs_requires() -> None:
    assert canonical_json("\u00e9\u20ac\U0001f600") == '"\u00e9\u20ac\U0001f600"'.encode()
    assert canonical_json("\x00\x1f\x7f") == b'"\\u0000\\u001f\x7f"'
    assert canonical_json('\b\f\n\r\t"\\/') == b'"\\b\\f\\n\\r\\t\\"\\\\/"'


def test_integer_safe_range_boundaries() -> None:
    limit = 2**53 - 1
    assert canonical_json(limit) == str(limit).encode()
    assert canonical_json(-limit) == str(-limit).encode()
    for too_big in (limit + 1, -(limit + 1), 10**30):
        with pytest.raises(CanonicalizationError, match=str(too_big)):
            canonical_json({"n": [too_big]})


# --- rejections name the offending value and its path -------------------------------------


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "path", "fragment"),
    [
        (math.nan, "(root)", "nan"),
        ({"a": [1, math.inf]}, "/a/1", "inf"),
        ({"a": {"b": -math.inf}}, "/a/b", "-inf"),
        ({"a": {1: "x"}}, "/a", "key 1"),
        ({(1, 2): "x"}, "(root)", "key (1, 2)"),
        ({None: "x"}, "(root)", "key None"),
        ({"a/b": {"c~d": [2**53]}}, "/a~1b/c~0d/0", str(2**53)),
        ({"big": [10**5000]}, "/big/0", "int of 16610 bits"),
        ({"obj": _BadRepr()}, "/obj", "_BadRepr"),
        ({"blob": b"\x00"}, "/blob", "bytes"),
        ({"s": {1, 2}}, "/s", "set"),
        ({"d": decimal.Decimal("1.5")}, "/d", "Decimal"),
        ([object()], "/0", "object"),
        ({"s": "\ud800"}, "/s", "surrogate"),
        ({"\udfff": 1, "a": 2}, "(root)", "surrogate"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isprintable() else None,
)
def test_rejections_name_value_and_path(value: Any, path: str, fragment: str) -> None:
    with pytest.raises(CanonicalizationError) as caught:
        canonical_json(value)
    assert caught.value.path == path
    assert path in str(caught.value)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_cycles_and_deep_nesting_are_rejected() -> None:
    cyclic: list[Any] = [1]
    cyclic.append({"again": cyclic})
    with pytest.raises(CanonicalizationError, match="cyclic") as caught:
        canonical_json(cyclic)
    assert caught.value.path == "/1/again"
    # Deeper than the interpreter allows. Other imports (py-evm) raise the limit to
    # 100000, so pin a modest one for the duration to keep this fast.
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(3000)
    try:
        deep: list[Any] = []
        for _ in range(sys.getrecursionlimit() + 100):
            deep = [deep]
        with pytest.raises(CanonicalizationError, match="deep"):
            canonical_json(deep)
    finally:
        sys.setrecursionlimit(saved)


def test_shared_but_acyclic_references_are_fine() -> None:
    shared = {"k": 1}
    assert canonical_json([shared, shared]) == b'[{"k":1},{"k":1}]'


# --- properties ---------------------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(_json_values)
def test_canonical_json_round_trips_and_is_idempotent(value: Any) -> None:
    canonical = canonical_json(value)
    # Integers are parsed back as doubles: JCS writes an integral double such as
    # 4.126556841988465e16 as "41265568419884650", which only means the same number
    # in IEEE-754. Safe-range ints convert to float exactly, so nothing is lost.
    parsed = json.loads(canonical, parse_int=float)
    assert parsed == value
    assert canonical_json(parsed) == canonical
    assert b"\n" not in canonical.replace(b"\\n", b"")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(-5, 5), min_size=2, max_size=8))
def test_key_order_is_utf16_order(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    canonical = canonical_json(reordered)
    assert canonical == canonical_json(value)
    keys = [k for k, _ in json.loads(canonical, object_pairs_hook=lambda kv: kv)]
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))


# --- digest -------------------------------------------------------------------------------


def test_digest_equals_manual_prefixed_sha256() -> None:
    for kind, data in [("test", b"hello"), ("dataset-row", b""), ("a", b"\x00" * 100)]:
        manual = hashlib.sha256(b"provnet:" + kind.encode() + b":v1\x00" + data).digest()
        assert digest(kind, data) == manual
        assert len(digest(kind, data)) == 32


def test_digest_known_answers() -> None:
    # Computed independently with: printf 'provnet:test:v1\0hello' | sha256sum
    assert (
        digest("test", b"hello").hex()
        == "7e32630565b73ae40406322850c473a5f41a5c101675baf7b6442e41ff6dfba9"
    )
    assert (
        digest("dataset-row", b"").hex()
        == "e9c2d6f32e81781fca138901c86bcc67989fcdd77d9185dfe22226b17eb4a8ab"
    )
    # printf 'provnet:algorithm:v1\0{"a":1,"b":[true,null]}' | sha256sum
    assert (
        digest_json("algorithm", {"b": [True, None], "a": 1}).hex()
        == "46bfbec60c7dadae76edd0eec24c70623b2f9914e35f05ea0d740ffdf3ce43be"
    )


def test_same_data_under_different_kinds_differs() -> None:
    data = b"same bytes"
    kinds = ["dataset-row", "algorithm", "log-entry", "a", "b", "row", "row-v2", "0"]
    digests = {digest(k, data) for k in kinds}
    assert len(digests) == len(kinds)
    assert hashlib.sha256(data).digest() not in digests


@settings(max_examples=200, deadline=None)
@given(
    k1=st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
    k2=st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
    d1=st.binary(max_size=24),
    d2=st.binary(max_size=24),
)
def test_digest_is_injective_over_kind_and_data(k1: str, k2: str, d1: bytes, d2: bytes) -> None:
    assert (digest(k1, d1) == digest(k2, d2)) == ((k1, d1) == (k2, d2))


def test_forbidden_kind_characters_would_break_separation() -> None:
    # If a kind could contain ":" and NUL, kind "x:v1\0y" with data D would hash the
    # same bytes as kind "x" with data "y:v1\0" + D. That is why such kinds are refused.
    forged_preimage = b"provnet:" + b"x:v1\x00y" + b":v1\x00" + b"payload"
    assert digest("x", b"y:v1\x00payload") == hashlib.sha256(forged_preimage).digest()
    with pytest.raises(ValueError, match="kind"):
        digest("x:v1\x00y", b"payload")


@pytest.mark.parametrize(
    "kind",
    ["", "A", "Row", "a:b", "a\x00b", "a b", "a_b", "a.b", "a/b", "\u00e9", "a\n", "\n", "\uff41"],
)
def test_bad_kinds_are_rejected(kind: str) -> None:
    with pytest.raises(ValueError, match="kind") as caught:
        digest(kind, b"data")
    assert repr(kind) in str(caught.value)
    with pytest.raises(ValueError, match="kind"):
        digest_json(kind, {})


@pytest.mark.parametrize("kind", [None, 1, b"row", ["row"]], ids=repr)
def test_non_str_kinds_are_rejected(kind: Any) -> None:
    with pytest.raises(ValueError, match="kind"):
        digest(kind, b"data")


@pytest.mark.parametrize(
    "data", ["text", bytearray(b"x"), memoryview(b"x"), None, 1], ids=lambda d: type(d).__name__
)
def test_digest_data_must_be_bytes(data: Any) -> None:
    with pytest.raises(TypeError, match="bytes"):
        digest("row", data)


def test_digest_json_is_digest_of_canonical_json() -> None:
    value = {"z": [1, 2.5, "s"], "a": {"nested": True}}
    assert digest_json("algorithm", value) == digest("algorithm", canonical_json(value))
    assert digest_json("algorithm", value) == digest_json(
        "algorithm", dict(reversed(value.items()))
    )
    assert digest_json("algorithm", value) != digest_json("dataset", value)


def test_digest_json_propagates_canonicalization_errors() -> None:
    with pytest.raises(CanonicalizationError, match="/x"):
        digest_json("algorithm", {"x": math.nan})
