"""Identifier normalisation: the same identifier written differently normalises to one
value, different identifiers never collide, every refusal has a name, and the vectorised
column path agrees with the scalar rule (including on malformed input).

Check digits are computed here from the standards' definitions (ISO 7064 MOD 11-2 as
the congruence over all 18 positions, Luhn as the digit sum of doubled digits), not by
calling the module under test.
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Sequence

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from node.algorithms import identifiers
from node.algorithms.identifiers import (
    KINDS,
    InvalidIdentifier,
    Reason,
    UnknownIdentifierKind,
    identifier_tag,
    normalise,
    normalise_column,
)

# --- independent references ----------------------------------------------------------


def iso7064_check(first17: str) -> str:
    """The character c making sum(a_i * 2^(i-1)) = 1 (mod 11), positions i counted from
    the right with the check character at i = 1 (ISO 7064 MOD 11-2 as GB 11643 states it)."""
    for c in range(11):
        digits = [*(int(d) for d in first17), c]
        total = sum(a * 2 ** (i - 1) for i, a in zip(range(18, 0, -1), digits, strict=True))
        if total % 11 == 1:
            return "X" if c == 10 else str(c)
    raise AssertionError("no check character")


def luhn_ok(number: str) -> bool:
    """Luhn: double every second digit from the right, add the digits of the products."""
    digits = "".join(str(int(d) * 2) if i % 2 else d for i, d in enumerate(reversed(number)))
    return sum(int(d) for d in digits) % 10 == 0


def fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def refusal(kind: str, value: str, **kw: str) -> InvalidIdentifier:
    with pytest.raises(InvalidIdentifier) as info:
        normalise(kind, value, **kw)
    return info.value


# --- national-id ----------------------------------------------------------------------

# The GB 11643-1999 worked example and a second published specimen.
REAL_IDS = ["11010519491231002X", "440524188001010014"]


@pytest.mark.parametrize("number", REAL_IDS)
def test_real_id_check_digits(number: str) -> None:
    assert iso7064_check(number[:17]) == number[17]
    assert normalise("national-id", number) == number


@pytest.mark.parametrize(
    "written",
    [
        "11010519491231002X",
        "11010519491231002x",
        "110105 19491231 002X",
        "110105-19491231-002x",
        " 110105.19491231.002X ",
        fullwidth("11010519491231002X"),
        fullwidth("110105 19491231 002x").replace(" ", "\u3000"),
        "110105491231002",  # the legacy 15-digit number of the same person
        "110105 491231 002",
    ],
)
def test_id_variants_agree(written: str) -> None:
    assert normalise("national-id", written) == "11010519491231002X"


def test_legacy_id_conversion_matches_definition() -> None:
    legacy = "440524800101001"
    s17 = legacy[:6] + "19" + legacy[6:]
    assert normalise("national-id", legacy) == s17 + iso7064_check(s17)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("110105194912310021", Reason.CHECK_DIGIT),
        ("11010519491231002", Reason.LENGTH),
        ("1101051949123100200", Reason.LENGTH),
        ("1101051949123100X1", Reason.CHARACTER),
        ("11010519491231002Y", Reason.CHARACTER),
        ("11010519491231002:", Reason.CHARACTER),  # ':' is '0' + 10, like X's value
        ("11010549123100X", Reason.CHARACTER),
        (" - ", Reason.EMPTY),
        ("", Reason.EMPTY),
        ("\u2460" + "1010519491231002X", Reason.CHARACTER),  # circled one is not a digit
    ],
)
def test_id_refusals(value: str, reason: Reason) -> None:
    assert refusal("national-id", value).reason is reason


# --- phone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "138.1234.5678",
        "(138) 1234 5678",
        "+86 138 1234 5678",
        "+86-138-1234-5678",
        "+8613812345678",
        "0086 138 1234 5678",
        "008613812345678",
        "+86 (0)138 1234 5678",
        fullwidth("+86 138-1234-5678"),
        fullwidth("13812345678"),
        "\u3000138\u30001234\u30005678\t",
        "138\u20101234\u20135678",
    ],
)
def test_mobile_variants_agree(written: str) -> None:
    assert normalise("phone", written) == "+8613812345678"


@pytest.mark.parametrize(
    "written",
    [
        "010-12345678",
        "(010) 1234 5678",
        "+86 10 1234 5678",
        "0086 10 12345678",
        "+86 (0)10 12345678",
    ],
)
def test_landline_trunk_prefix_removed(written: str) -> None:
    assert normalise("phone", written) == "+861012345678"


@pytest.mark.parametrize(
    ("written", "country", "expected"),
    [
        ("020 7946 0958", "44", "+442079460958"),
        ("+44 (0)20 7946 0958", "86", "+442079460958"),
        ("1 (415) 555-0100", "1", "+14155550100"),
        ("(415) 555-0100", "+1", "+14155550100"),
        ("9123 4567", "852", "+85291234567"),
        ("+852 9123 4567", "86", "+85291234567"),
        ("+49 30 123456", "86", "+4930123456"),  # outside the table: E.164 length only
    ],
)
def test_other_countries(written: str, country: str, expected: str) -> None:
    assert normalise("phone", written, country=country) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1-800-FLOWERS", Reason.CHARACTER),
        ("138 1234 5678 ext 9", Reason.CHARACTER),
        ("138/1234/5678", Reason.CHARACTER),
        ("+", Reason.LENGTH),
        ("12345678", Reason.LENGTH),  # a local number without area code
        ("138123456789", Reason.LENGTH),
        ("8613812345678", Reason.LENGTH),  # no '+': read as a national number
        ("+86 00 1234 56789", Reason.NUMBER),
        ("+0123456789", Reason.NUMBER),
        ("+1234567890123456", Reason.LENGTH),
        (" ()- ", Reason.EMPTY),
    ],
)
def test_phone_refusals(value: str, reason: Reason) -> None:
    assert refusal("phone", value).reason is reason


def test_unsupported_default_country() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        normalise("phone", "13812345678", country="999")
    with pytest.raises(ValueError, match="unsupported"):
        normalise_column("phone", ["13812345678"], country="999")


# --- card -----------------------------------------------------------------------------

TEST_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]


@pytest.mark.parametrize("number", TEST_CARDS)
def test_known_test_cards(number: str) -> None:
    assert luhn_ok(number)
    assert normalise("card", number) == number
    grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    assert normalise("card", grouped) == number
    assert normalise("card", fullwidth(grouped.replace(" ", "-"))) == number


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("4111 1111 1111 1112", Reason.LUHN),
        ("4111 1111 111", Reason.LENGTH),
        ("4111 1111 1111 1111 1111", Reason.LENGTH),
        ("4111 1111 1111 111a", Reason.CHARACTER),
        ("4111+1111+1111+1111", Reason.CHARACTER),
        ("--", Reason.EMPTY),
    ],
)
def test_card_refusals(value: str, reason: Reason) -> None:
    assert not luhn_ok("4111111111111112")
    assert refusal("card", value).reason is reason


# --- email ----------------------------------------------------------------------------


def test_email_rules() -> None:
    assert normalise("email", "  Alice.Smith@Example.COM ") == "Alice.Smith@example.com"
    assert normalise("email", "alice@example.com.") == "alice@example.com"
    assert normalise("email", "bob@Bücher.example") == "bob@xn--bcher-kva.example"
    assert normalise("email", "bob@xn--bcher-kva.example") == "bob@xn--bcher-kva.example"
    assert normalise("email", "bob\uff20EXAMPLE.com") == "bob@example.com"
    puny = ".".join("xn--" + label.encode("punycode").decode() for label in ("例子", "广告"))
    assert normalise("email", "用户@例子.广告") == "用户@" + puny
    # RFC 5321: the local part is the receiving host's to interpret, so case is kept.
    assert normalise("email", "Alice@example.com") != normalise("email", "alice@example.com")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("alice.example.com", Reason.FORMAT),
        ("@example.com", Reason.FORMAT),
        ("alice@", Reason.FORMAT),
        ("a@b@example.com", Reason.FORMAT),
        ("al ice@example.com", Reason.CHARACTER),
        ("x" * 65 + "@example.com", Reason.LENGTH),
        ("alice@exa mple.com", Reason.DOMAIN),
        ("alice@-example.com", Reason.DOMAIN),
        ("alice@localhost", Reason.DOMAIN),
        ("alice@[192.0.2.1]", Reason.DOMAIN),
        ("   ", Reason.EMPTY),
    ],
)
def test_email_refusals(value: str, reason: Reason) -> None:
    assert refusal("email", value).reason is reason


# --- text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Zhang   San ", "zhang san"),
        ("ZHANG\tSAN\n", "zhang san"),
        ("Straße", "strasse"),
        (fullwidth("ZHANG") + "\u3000" + fullwidth("SAN"), "zhang san"),
        ("ﬁnance", "finance"),
        ("张三", "张三"),
    ],
)
def test_text_rules(value: str, expected: str) -> None:
    assert normalise("text", value) == expected


def test_text_refuses_blank() -> None:
    assert refusal("text", " \u3000\t").reason is Reason.EMPTY


# --- errors, tags ---------------------------------------------------------------------


def test_refusal_never_carries_the_whole_identifier() -> None:
    value = "110105194912310021"
    exc = refusal("national-id", value)
    assert exc.kind == "national-id"
    assert exc.redacted == "***0021"
    for text in (str(exc), repr(exc), repr(exc.args)):
        assert value not in text
        assert "1101051949" not in text
    short = refusal("phone", "12ab")
    assert short.redacted == "***ab"
    assert refusal("card", "1").redacted == "***"
    assert isinstance(exc, ValueError)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.kind, copy.redacted, copy.reason, str(copy)) == (
        exc.kind,
        exc.redacted,
        exc.reason,
        str(exc),
    )
    assert value.encode() not in pickle.dumps(exc)


def test_unknown_kind() -> None:
    with pytest.raises(UnknownIdentifierKind):
        normalise("passport", "E12345678")
    with pytest.raises(UnknownIdentifierKind):
        normalise_column("passport", ["E12345678"])
    with pytest.raises(UnknownIdentifierKind):
        identifier_tag("passport")


def test_tags_separate_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    tags = [identifier_tag(k) for k in KINDS]
    assert identifier_tag("phone") == b"provnet:id:phone:v1:"
    monkeypatch.setattr(identifiers, "RULES_VERSION", 10)
    tags += [identifier_tag(k) for k in KINDS]
    assert len(set(tags)) == len(tags)
    # Prefix-free, so tag || value can never be read under two kinds.
    assert not any(a != b and b.startswith(a) for a in tags for b in tags)
    digits = "4111111111111111"
    assert identifier_tag("card") + digits.encode() != identifier_tag("phone") + digits.encode()


# --- properties -----------------------------------------------------------------------

SEPARATORS = ["", "", " ", "-", ".", "\u3000", "\t", "\u2010"]


def _noisy(rng: random.Random, text: str, seps: Sequence[str]) -> str:
    out = []
    for ch in text:
        out.append(fullwidth(ch) if rng.random() < 0.2 else ch)
        if rng.random() < 0.3:
            out.append(rng.choice(seps))
    return "".join(out)


id17 = st.text("0123456789", min_size=17, max_size=17)
mobiles = st.builds(
    lambda a, b: "1" + a + b,
    st.sampled_from("3456789"),
    st.text("0123456789", min_size=9, max_size=9),
)


@given(a=id17, b=id17, seed=st.integers(0, 2**32))
def test_ids_normalise_noise_away_and_never_collide(a: str, b: str, seed: int) -> None:
    rng = random.Random(seed)
    ida, idb = a + iso7064_check(a), b + iso7064_check(b)
    na = normalise("national-id", _noisy(rng, ida.lower(), SEPARATORS))
    nb = normalise("national-id", _noisy(rng, idb, SEPARATORS))
    assert na == ida and nb == idb
    assert (na == nb) == (a == b)


@given(a=mobiles, b=mobiles, seed=st.integers(0, 2**32))
def test_phones_normalise_noise_away_and_never_collide(a: str, b: str, seed: int) -> None:
    rng = random.Random(seed)
    prefix = rng.choice(["", "+86", "+86 ", "0086", "0086-", "+86(0)"])
    na = normalise("phone", _noisy(rng, prefix + a, [*SEPARATORS, "(", ")"]))
    nb = normalise("phone", b)
    assert na == "+86" + a and nb == "+86" + b
    assert (na == nb) == (a == b)


@given(body=st.text("0123456789", min_size=11, max_size=18), seed=st.integers(0, 2**32))
def test_cards_normalise_noise_away(body: str, seed: int) -> None:
    number = next(body + c for c in "0123456789" if luhn_ok(body + c))
    assert normalise("card", _noisy(random.Random(seed), number, [" ", "-"])) == number
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert refusal("card", wrong).reason is Reason.LUHN


# Includes the neighbours of the accepted characters (":" and "/" around the digits,
# "W"/"Y" around "X"), which a byte-arithmetic fast path could mistake for them.
ALPHABET = "0123456789xX+-.() @\t\u3000\u2010aZ:/;WY[]" + fullwidth("0123456789xX+-()@:")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid-looking identifier with one character replaced, inserted or deleted."""
    base = draw(
        st.one_of(
            id17.map(lambda s: s + iso7064_check(s)),
            mobiles.map(lambda m: draw(st.sampled_from(["", "+86", "0086", "0"])) + m),
            st.sampled_from(TEST_CARDS),
        )
    )
    i = draw(st.integers(0, len(base)))
    ch = draw(st.sampled_from(ALPHABET))
    op = draw(st.sampled_from(["replace", "insert", "delete"]))
    if op == "insert":
        return base[:i] + ch + base[i:]
    return base[:i] + (ch if op == "replace" else "") + base[i + 1 :]


raw_values = st.one_of(
    mutated(),
    st.text(ALPHABET, max_size=24),
    st.text(max_size=24),
    mobiles.map(lambda m: "+86 " + m),
    id17.map(lambda s: s + iso7064_check(s)),
    id17.map(lambda s: s[:15]),
    st.sampled_from(
        [*TEST_CARDS, "4111111111111112", "Alice@Bücher.example", "ß  " + fullwidth("A")]
    ),
)


def _scalar(kind: str, value: str) -> str | None:
    try:
        return normalise(kind, value)
    except InvalidIdentifier:
        return None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), value=raw_values)
def test_idempotent(kind: str, value: str) -> None:
    once = _scalar(kind, value)
    assume(once is not None)
    assert once is not None
    assert normalise(kind, once) == once


def _check_column(kind: str, values: Sequence[str | None]) -> None:
    out, errors = normalise_column(kind, values)
    expected: list[str | None] = []
    expected_errors: list[tuple[int, str]] = []
    for row, value in enumerate(values):
        if value is None:
            expected.append(None)
            expected_errors.append((row, "missing"))
            continue
        try:
            expected.append(normalise(kind, value))
        except InvalidIdentifier as exc:
            expected.append(None)
            expected_errors.append((row, exc.reason.value))
    assert out.to_pylist() == expected
    assert errors == expected_errors


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), values=st.lists(st.one_of(st.none(), raw_values), max_size=30))
def test_column_equals_scalar(kind: str, values: list[str | None]) -> None:
    _check_column(kind, values)


def test_column_parallel_slices_and_input_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identifiers, "_CHUNK_ROWS", 7)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    rng = random.Random(7)
    pool = [
        "13812345678",
        "+86 10 1234 5678",
        "bad",
        None,
        "11010519491231002x",
        "110105194912310021",
        "4111 1111 1111 1111",
        "4111111111111112",
        "110105491231002",
        fullwidth("138 1234 5678"),
        "",
        "+852 9123 4567",
        "Zhang  SAN",
        "Straße",
    ]
    values = [rng.choice(pool) for _ in range(500)]
    for kind in KINDS:
        _check_column(kind, values)
    # Sliced (non-zero offset), chunked and large_string inputs give the same answer.
    whole = pa.array(values, pa.string())
    sliced = whole.slice(3, 200)
    assert normalise_column("phone", sliced)[0].to_pylist() == (
        normalise_column("phone", values[3:203])[0].to_pylist()
    )
    chunked = pa.chunked_array([whole.slice(0, 100), whole.slice(100)])
    large = whole.cast(pa.large_string())
    reference = normalise_column("national-id", values)
    assert normalise_column("national-id", chunked)[0].equals(reference[0])
    assert normalise_column("card", large)[0].equals(normalise_column("card", values)[0])
    assert normalise_column("text", [])[0].to_pylist() == []


def test_every_reason_is_reachable() -> None:
    examples = {
        Reason.MISSING: ("phone", None),
        Reason.EMPTY: ("text", "  "),
        Reason.CHARACTER: ("phone", "138-CALL-ME"),
        Reason.LENGTH: ("card", "4111"),
        Reason.CHECK_DIGIT: ("national-id", "110105194912310021"),
        Reason.LUHN: ("card", "4111111111111112"),
        Reason.NUMBER: ("phone", "+86 0 0123 4567 89"),
        Reason.FORMAT: ("email", "nobody"),
        Reason.DOMAIN: ("email", "nobody@invalid..example"),
    }
    assert set(examples) == set(Reason)
    for reason, (kind, value) in examples.items():
        assert normalise_column(kind, [value])[1] == [(0, reason.value)]
