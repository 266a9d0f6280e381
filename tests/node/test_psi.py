"""PSI (node/algorithms/psi.py) over in-memory channels, one thread per party, real crypto.

Checked: every mode equals the plaintext reference and an independent set computation
written here (scalar ``identifiers.normalise`` per value, Python sets), over empty,
disjoint, identical and random overlapping sets, unnormalised identifiers, duplicates,
negative and decimal values, and k = 1, 2, 3 responders; the output policy (suppression,
refusal of a small requester set); dataset mismatches; strict parameters; what the
responders put on the wire (no identifier, no unkeyed hash of one); tampered messages.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import Column, arrow_type
from node.algorithms import identifiers, psi
from node.algorithms.output_policy import EffectivePolicy, effective
from node.algorithms.package import package_of
from node.channel import Channel, InMemoryNetwork
from node.crypto import ecdh_psi, oprf
from tests.node.faulty_channel import FaultyChannel

REQ = "requester"
TIMEOUT = 20.0


def policy(min_group_size: int = 1) -> EffectivePolicy:
    return EffectivePolicy(
        level=1,
        min_group_size=min_group_size,
        min_provider_orgs=2,
        epsilon_per_query=None,
        epsilon_per_grant=None,
        history_limit=1000,
    )


def params(mode: str = "intersection", kind: str = "phone", **extra: Any) -> psi.PsiParams:
    raw: dict[str, Any] = {
        "mode": mode,
        "identifier_kind": kind,
        "requester_column": "id",
        "responder_column": "customer",
    }
    if mode == "intersection-sum":
        raw["value_column"] = "amount"
    if mode == "intersection-payload":
        raw["payload_columns"] = ["amount", "note"]
    raw.update(extra)
    return psi.PsiParams.from_json({k: v for k, v in raw.items() if v is not None})


# ----------------------------------------------------------------------- data helpers


def table(
    spec: Sequence[tuple[str, str, int]], data: dict[str, list[Any]]
) -> tuple[pa.Table, list[Column]]:
    """A dataset table as ImportedDataset holds it: (name, type, scale) columns, values
    given as Python ints/strings/Decimals."""
    columns = [
        Column(name, kind, kind == "string" and name in ("id", "customer"), scale)
        for name, kind, scale in spec
    ]
    arrays = [pa.array(data[c.name], type=arrow_type(c)) for c in columns]
    return pa.table(arrays, names=[c.name for c in columns]), columns


def requester_table(ids: Sequence[str]) -> tuple[pa.Table, list[Column]]:
    return table([("id", "string", 0)], {"id": list(ids)})


def responder_table(
    ids: Sequence[str], amounts: Sequence[int | Decimal] | None = None, scale: int = 0
) -> tuple[pa.Table, list[Column]]:
    amounts = list(amounts) if amounts is not None else [i * 7 - 3 for i in range(len(ids))]
    notes = [f"note-{i % 3}" for i in range(len(ids))]
    kind = "decimal" if scale else "integer"
    return table(
        [("customer", "string", 0), ("amount", kind, scale), ("note", "string", 0)],
        {"customer": list(ids), "amount": amounts, "note": notes},
    )


def phone(n: int) -> str:
    return f"138{n:08d}"


def phone_variant(rng: random.Random, digits: str) -> str:
    """The same mobile number as a bank clerk might have typed it."""
    return rng.choice(
        [
            digits,
            f"{digits[:3]} {digits[3:7]} {digits[7:]}",
            f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}",
            f"0086{digits}",
            f"+86-{digits}",
            f"({digits[:3]}) {digits[3:]}",
        ]
    )


def luhn_complete(body: str) -> str:
    for check in "0123456789":
        if identifiers.luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def card(n: int) -> str:
    return luhn_complete(f"622202{n:09d}")  # 16 digits


# ----------------------------------------------------------------------- the oracle


def norm(kind: str, value: str) -> str | None:
    try:
        return identifiers.normalise(kind, value)
    except identifiers.InvalidIdentifier:
        return None


def oracle_sets(
    kind: str, req: Sequence[str], responders: Sequence[Sequence[str]]
) -> tuple[set[str], list[set[str]], int]:
    x = {v for v in (norm(kind, s) for s in req) if v is not None}
    invalid = sum(norm(kind, s) is None for s in req)
    ys = [{v for v in (norm(kind, s) for s in ids) if v is not None} for ids in responders]
    return x, ys, invalid


# ------------------------------------------------------------------------ the harness


@dataclass
class Run:
    result: psi.PsiResult | None
    errors: dict[str, BaseException]
    network: InMemoryNetwork
    responders: list[str] = field(default_factory=list)

    def responder_payloads(self) -> list[bytes]:
        return [p for sender, _, _, p in self.network.sent if sender in self.responders]

    def steps(self, sender: str) -> list[str]:
        return [step for s, _, step, _ in self.network.sent if s == sender]


def run(
    p: psi.PsiParams,
    req: tuple[pa.Table, Sequence[Column]],
    responders: Sequence[tuple[pa.Table, Sequence[Column]]],
    pol: EffectivePolicy | None = None,
    *,
    wrap: Callable[[str, Channel], Channel] | None = None,
    timeout: float = TIMEOUT,
    **pool: Any,
) -> Run:
    """Requester and responders in threads over one InMemoryNetwork."""
    pol = pol or policy()
    names = [f"r{i + 1}" for i in range(len(responders))]
    network = InMemoryNetwork([REQ, *names])

    def channel(name: str) -> Channel:
        ch: Channel = network.channel(name)
        return wrap(name, ch) if wrap is not None else ch

    errors: dict[str, BaseException] = {}
    out: list[psi.PsiResult] = []

    def requester() -> None:
        try:
            out.append(
                psi.run_requester(
                    channel(REQ), p, req[0], req[1], names, timeout=timeout, policy=pol, **pool
                )
            )
        except BaseException as exc:
            errors[REQ] = exc

    def responder(name: str, data: tuple[pa.Table, Sequence[Column]]) -> None:
        try:
            psi.run_responder(
                channel(name), p, data[0], data[1], REQ, names, timeout=timeout, policy=pol, **pool
            )
        except BaseException as exc:
            errors[name] = exc

    threads = [threading.Thread(target=requester)] + [
        threading.Thread(target=responder, args=(n, d))
        for n, d in zip(names, responders, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 4)
        assert not t.is_alive(), "a party hung"
    return Run(out[0] if out else None, errors, network, names)


def reasons(r: Run) -> dict[str, str]:
    """Each failed party's on-chain reason; every failure must be a PsiError (no
    timeouts: refusals reach every peer that waits)."""
    out = {}
    for party, exc in r.errors.items():
        assert isinstance(exc, psi.PsiError), (party, repr(exc))
        out[party] = exc.reason
    return out


def ok(r: Run) -> psi.PsiResult:
    assert not r.errors, {k: repr(v) for k, v in r.errors.items()}
    assert r.result is not None
    return r.result


# ----------------------------------------------------------------- module constants


def test_module_is_an_approved_algorithm_package() -> None:
    assert (psi.NAME, psi.VERSION, psi.KIND) == ("psi", "1.0.0", AlgorithmKind.PSI)
    assert psi.PROTOCOL == "requester" and psi.OUTPUT_POLICY is False
    package = package_of(psi)
    assert set(package.source_digests) == {
        "node/algorithms/psi.py",
        "node/crypto/ecdh_psi.py",
        "node/crypto/oprf.py",
        "node/algorithms/identifiers.py",
        "node/algorithms/output_policy.py",
        "node/algorithms/task_columns.py",
        "node/algorithms/param_fields.py",
    }
    assert len(package.digest) == 32
    assert psi.Params is psi.PsiParams


# -------------------------------------------------------------- intersection, k = 1


SCENARIOS = {
    # name: (requester numbers, responder numbers)
    "empty-requester": ([], list(range(10))),
    "empty-responder": (list(range(10)), []),
    "both-empty": ([], []),
    "disjoint": (list(range(0, 12)), list(range(100, 109))),
    "identical": (list(range(15)), list(range(15))),
    "subset": (list(range(5)), list(range(20))),
    "random": (None, None),
}


def scenario(name: str, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    a, b = SCENARIOS[name]
    if a is None or b is None:
        universe = rng.sample(range(10**7), 80)
        a = rng.sample(universe, rng.randint(10, 50))
        b = rng.sample(universe, rng.randint(10, 50))
    req = [phone_variant(rng, phone(n)) for n in a]
    res = [phone_variant(rng, phone(n)) for n in b]
    # duplicates, written differently, and a few identifiers the rules refuse
    req += [phone_variant(rng, phone(n)) for n in a[:3]] + ["12345", "not a phone"]
    res += [phone_variant(rng, phone(n)) for n in b[:4]] + ["+86 000"]
    rng.shuffle(req)
    rng.shuffle(res)
    return req, res


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_one_responder_matches_reference_and_oracle(mode: str, name: str) -> None:
    req, res = scenario(name, hash(name) % 1000)
    p = params(mode)
    r = run(p, requester_table(req), [responder_table(res)])
    x, (y,), invalid = oracle_sets("phone", req, [res])
    if mode == "cardinality" and not x:  # below any minimum group size: refused
        assert reasons(r) == {REQ: "GROUP_TOO_SMALL", "r1": "GROUP_TOO_SMALL"}
        with pytest.raises(psi.PsiError, match="GROUP_TOO_SMALL"):
            psi.plaintext_psi(p, *requester_table(req), [responder_table(res)], policy())
        return
    result = ok(r)
    assert result == psi.plaintext_psi(p, *requester_table(req), [responder_table(res)], policy())
    assert result.requester_items == len(x)
    assert result.invalid_requester_rows == invalid == 2
    assert result.responder_items == (len(y),)
    if mode == "cardinality":  # a count of 0 is below any minimum group size
        assert result.suppressed is (not x & y)
        assert result.cardinality == (len(x & y) or None)
    else:  # identifiers are disclosed by definition: never suppressed
        assert result.suppressed is False
        assert result.cardinality == len(x & y)
    if mode == "intersection":
        assert result.intersection == tuple(sorted(x & y))
    else:
        assert result.intersection is None
    assert result.sum is None and result.payload is None


def test_unnormalised_identifiers_match_their_normal_forms() -> None:
    req = ["138 1234 5678", "+86 139-0000-1111", "6222 0212 3456 7890"]
    res = ["13812345678", "008613900001111", "+8613700000000"]
    result = ok(run(params(), requester_table(req), [responder_table(res)]))
    assert result.intersection == ("+8613812345678", "+8613900001111")
    assert result.invalid_requester_rows == 1  # a card number is not a phone number

    cards = [card(n) for n in range(6)]
    spaced = [" ".join(c[i : i + 4] for i in range(0, 16, 4)) for c in cards]
    p = params("intersection", kind="card")
    result = ok(run(p, requester_table(spaced[:4]), [responder_table(cards[2:])]))
    assert result.intersection == tuple(sorted(cards[2:4]))


# ---------------------------------------------------------------- k = 2 and k = 3


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
@pytest.mark.parametrize("k", [2, 3])
def test_several_responders(mode: str, k: int) -> None:
    rng = random.Random(k * 31 + len(mode))
    universe = rng.sample(range(10**7), 60)
    x_numbers = rng.sample(universe, 40)
    res_numbers = [rng.sample(universe, 45) for _ in range(k)]
    req = [phone_variant(rng, phone(n)) for n in x_numbers] + [phone(x_numbers[0])]
    responders = [[phone_variant(rng, phone(n)) for n in ns] + ["bad"] for ns in res_numbers]
    p = params(mode)
    result = ok(run(p, requester_table(req), [responder_table(r) for r in responders]))
    x, ys, _ = oracle_sets("phone", req, responders)
    joint = set.intersection(*ys)
    expected = x & joint
    assert 0 < len(expected) < len(x)  # the seed gives a proper, non-empty overlap
    assert result == psi.plaintext_psi(
        p, *requester_table(req), [responder_table(r) for r in responders], policy()
    )
    assert result.cardinality == len(expected)
    assert result.responder_items == (len(joint),)
    assert result.intersection == (tuple(sorted(expected)) if mode == "intersection" else None)


def test_three_responders_with_an_empty_one() -> None:
    req = [phone(n) for n in range(10)]
    responders = [[phone(n) for n in range(5)], [], [phone(n) for n in range(8)]]
    result = ok(run(params(), requester_table(req), [responder_table(r) for r in responders]))
    assert result.intersection == () and result.responder_items == (0,)


def test_pool_with_two_processes() -> None:
    rng = random.Random(5)
    req = [phone(n) for n in rng.sample(range(10**6), 300)]
    res = req[:120] + [phone(n) for n in range(10**6, 10**6 + 200)]
    executor = ecdh_psi.new_executor(2)
    try:
        p = params("intersection")
        result = ok(
            run(
                p,
                requester_table(req),
                [responder_table(res), responder_table(res[50:])],
                executor=executor,
                processes=2,
            )
        )
        expected = {identifiers.normalise("phone", v) for v in req[50:120]}
        assert result.intersection == tuple(sorted(expected))
        s = params("intersection-sum")
        amounts = list(range(-60, 60))
        result = ok(
            run(
                s,
                requester_table(req),
                [responder_table(res[:120], amounts)],
                executor=executor,
                processes=2,
            )
        )
        assert result.sum == str(sum(amounts)) and result.cardinality == 120
        # a worker's refusal of a bad element is the peer's protocol error, as inline
        tampered = run(
            p,
            requester_table(req),
            [responder_table(res)],
            wrap=lambda name, ch: (
                FaultyChannel(ch, tamper=_non_canonical_first("psi/req/1")) if name == REQ else ch
            ),
            executor=executor,
            processes=2,
            timeout=10,
        )
        assert reasons(tampered) == {REQ: "PROTOCOL_ERROR", "r1": "PROTOCOL_ERROR"}
    finally:
        executor.shutdown(wait=True)


# -------------------------------------------------------------------- intersection-sum


def test_sum_integer_values_with_duplicates_and_negatives() -> None:
    rng = random.Random(11)
    numbers = rng.sample(range(10**7), 30)
    res_ids = [phone_variant(rng, phone(n)) for n in numbers[:20]]
    res_ids += [phone_variant(rng, phone(n)) for n in numbers[:5]]  # more rows, same people
    amounts = [rng.randint(-(10**12), 10**12) for _ in res_ids]
    req = [phone_variant(rng, phone(n)) for n in numbers[10:30]]
    p = params("intersection-sum")
    r = run(p, requester_table(req), [responder_table(res_ids, amounts)])
    result = ok(r)
    expected_ids = {identifiers.normalise("phone", phone(n)) for n in numbers[10:20]}
    expected = sum(
        a
        for i, a in zip(res_ids, amounts, strict=True)
        if identifiers.normalise("phone", i) in expected_ids
    )
    assert result.cardinality == 10 and result.sum == str(expected)
    assert result.responder_items == (20,) and result.intersection is None
    assert result == psi.plaintext_psi(
        p, *requester_table(req), [responder_table(res_ids, amounts)], policy()
    )
    assert result.to_json()["sum"] == str(expected)


def test_sum_decimal_column_negative_total() -> None:
    ids = [phone(n) for n in range(8)]
    amounts = [Decimal("-12.50"), Decimal("3.05"), Decimal("-0.01"), Decimal("-100.00")] * 2
    p = params("intersection-sum")
    result = ok(run(p, requester_table(ids[:6]), [responder_table(ids, amounts, scale=2)]))
    expected = sum(amounts[:6], Decimal(0))
    assert result.sum == "-118.91" == f"{expected:.2f}"
    assert result == psi.plaintext_psi(
        p, *requester_table(ids[:6]), [responder_table(ids, amounts, scale=2)], policy()
    )


def test_sum_is_suppressed_below_the_minimum_but_the_masked_total_is_still_sent() -> None:
    ids = [phone(n) for n in range(12)]
    p = params("intersection-sum")
    r = run(p, requester_table(ids), [responder_table(ids[:3])], policy(5))
    result = ok(r)
    assert result.suppressed and result.cardinality is None and result.sum is None
    assert "psi/sum/masked" in r.steps(REQ)
    assert "psi/sum/opened" in r.steps("r1")
    empty = run(p, requester_table(ids), [responder_table([phone(99)])], policy(5))
    assert ok(empty).suppressed and "psi/sum/masked" in empty.steps(REQ)


# ---------------------------------------------------------------- intersection-payload


def test_payload_returns_every_row_of_the_matched_identifiers() -> None:
    rng = random.Random(3)
    ids = [phone(n) for n in range(10)]
    res_ids = [phone_variant(rng, i) for i in ids[:7]] + [phone_variant(rng, ids[1]), ids[2]]
    amounts = [Decimal(f"{i}.{i}5") * (-1 if i % 2 else 1) for i in range(len(res_ids))]
    req = [phone_variant(rng, i) for i in ids[4:]]
    p = params("intersection-payload")
    data = responder_table(res_ids, amounts, scale=2)
    result = ok(run(p, requester_table(req), [data]))
    assert result == psi.plaintext_psi(p, *requester_table(req), [data], policy())
    # independent: group the responder's rows by normalised identifier
    wanted = {identifiers.normalise("phone", i) for i in ids[4:7]}
    rows: dict[str, list[dict[str, Any]]] = {}
    for i, a, note in zip(res_ids, amounts, data[0].column("note").to_pylist(), strict=True):
        key = identifiers.normalise("phone", i)
        if key in wanted:
            rows.setdefault(key, []).append({"amount": f"{a:.2f}", "note": note})
    assert result.intersection == tuple(sorted(wanted))
    got = {
        m.identifier: sorted(json.dumps(r, sort_keys=True) for r in m.rows)
        for m in result.payload or ()
    }
    assert got == {k: sorted(json.dumps(r, sort_keys=True) for r in v) for k, v in rows.items()}
    assert result.responder_items == (7,)
    as_json = result.to_json()
    assert as_json["payload"][0]["identifier"] == as_json["intersection"][0]


def test_payload_with_nothing_in_common() -> None:
    p = params("intersection-payload")
    result = ok(run(p, requester_table([phone(1)]), [responder_table([phone(2), phone(3)])]))
    assert result.intersection == () and result.payload == () and result.cardinality == 0


def test_payload_and_sum_need_exactly_one_responder() -> None:
    for mode in ("intersection-payload", "intersection-sum"):
        p = params(mode)
        with pytest.raises(psi.InvalidParams) as info:
            p.check_responder_count(2)
        assert info.value.field == "mode"
        r = run(p, requester_table([phone(1)]), [responder_table([phone(1)])] * 2, timeout=2)
        assert reasons(r) == dict.fromkeys([REQ, "r1", "r2"], "PROTOCOL_ERROR")
    params("cardinality").check_responder_count(3)
    with pytest.raises(psi.InvalidParams) as info:
        params("cardinality").check_responder_count(0)
    assert info.value.field == "responders"


# ---------------------------------------------------------------------- output policy


def test_cardinality_is_suppressed_below_the_minimum_group_size() -> None:
    ids = [phone(n) for n in range(20)]
    p = params("cardinality", min_group_size=None)
    pol = effective([1], p.min_group_size, p.epsilon)  # level 1: minimum 5
    small = ok(run(p, requester_table(ids), [responder_table(ids[:4])], pol))
    assert small.suppressed and small.cardinality is None and small.min_group_size == 5
    assert small.to_json()["cardinality"] is None
    large = ok(run(p, requester_table(ids), [responder_table(ids[:5])], pol))
    assert not large.suppressed and large.cardinality == 5
    # a requested minimum only tightens
    tight = params("cardinality", min_group_size=6)
    pol = effective([1], tight.min_group_size, tight.epsilon)
    assert ok(run(tight, requester_table(ids), [responder_table(ids[:5])], pol)).suppressed
    # intersection discloses identifiers by definition: never suppressed
    plain = ok(run(params(), requester_table(ids), [responder_table(ids[:2])], policy(5)))
    assert plain.intersection is not None and len(plain.intersection) == 2


@pytest.mark.parametrize(
    ("mode", "k"), [("cardinality", 1), ("cardinality", 3), ("intersection-sum", 1)]
)
def test_responders_refuse_a_small_requester_set(mode: str, k: int) -> None:
    ids = [phone(n) for n in range(10)]
    r = run(
        params(mode), requester_table([*ids[:3], "junk"]), [responder_table(ids)] * k, policy(5)
    )
    assert r.result is None
    assert reasons(r) == dict.fromkeys([REQ, *r.responders], "GROUP_TOO_SMALL")
    # nothing of any responder's set reached anyone: only refusals were sent
    for sender, _, step, payload in r.network.sent:
        if sender != REQ:
            assert step.endswith("/head") and json.loads(payload) == {"refused": "GROUP_TOO_SMALL"}


# ------------------------------------------------------------------ dataset mismatch


def test_missing_or_mistyped_columns_are_dataset_mismatches() -> None:
    ids = [phone(n) for n in range(6)]
    wrong_res = table([("client", "string", 0)], {"client": ids})
    r = run(params(), requester_table(ids), [wrong_res])
    assert reasons(r) == {REQ: "DATASET_MISMATCH", "r1": "DATASET_MISMATCH"}
    assert "'customer'" in str(r.errors["r1"])

    r = run(params(), table([("other", "string", 0)], {"other": ids}), [responder_table(ids)] * 2)
    assert reasons(r) == dict.fromkeys([REQ, "r1", "r2"], "DATASET_MISMATCH")
    assert "'id'" in str(r.errors[REQ])

    numeric_id = table(
        [("customer", "integer", 0), ("amount", "integer", 0)],
        {"customer": [1, 2], "amount": [1, 2]},
    )
    with pytest.raises(psi.PsiError) as info:
        psi.plaintext_psi(params(), *requester_table(ids), [numeric_id], policy())
    assert info.value.reason == "DATASET_MISMATCH" and "customer" in info.value.detail

    text_value = table(
        [("customer", "string", 0), ("amount", "string", 0)], {"customer": ids, "amount": ids}
    )
    r = run(params("intersection-sum"), requester_table(ids), [text_value])
    assert reasons(r) == {REQ: "DATASET_MISMATCH", "r1": "DATASET_MISMATCH"}
    assert "amount" in str(r.errors["r1"])


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
@pytest.mark.parametrize("broken", [1, 2, 3])
def test_a_mismatch_at_any_of_three_responders_stops_everyone_without_timeouts(
    mode: str, broken: int
) -> None:
    ids = [phone(n) for n in range(12)]
    data = [responder_table(ids)] * 3
    data[broken - 1] = table([("client", "string", 0)], {"client": ids})
    r = run(params(mode), requester_table(ids), data, timeout=15)
    assert reasons(r) == dict.fromkeys([REQ, "r1", "r2", "r3"], "DATASET_MISMATCH")
    failed = r.errors[f"r{broken}"]
    assert isinstance(failed, psi.PsiError) and not failed.from_peer


def test_errors_never_carry_an_identifier() -> None:
    secret = "13812345678"
    r = run(params(), requester_table([secret]), [table([("x", "string", 0)], {"x": [secret]})])
    for exc in r.errors.values():
        assert secret not in str(exc) and "12345678" not in str(exc)


# ----------------------------------------------------------------------- parameters


def test_params_round_trip_and_defaults() -> None:
    for mode in psi.MODES:
        p = params(mode, min_group_size=7, country="852")
        assert psi.PsiParams.from_json(p.to_json()) == p
        assert json.loads(json.dumps(p.to_json())) == p.to_json()
        assert p.epsilon is None
    p = params()
    assert p.to_json() == {
        "mode": "intersection",
        "identifier_kind": "phone",
        "requester_column": "id",
        "responder_column": "customer",
        "country": "86",
    }
    assert params("intersection-payload").payload_columns == ("amount", "note")


@pytest.mark.parametrize(
    ("change", "field_name"),
    [
        ({"mode": "union"}, "mode"),
        ({"identifier_kind": "passport"}, "identifier_kind"),
        ({"requester_column": ""}, "requester_column"),
        ({"responder_column": 5}, "responder_column"),
        ({"colour": "red"}, "colour"),
        ({"value_column": "amount"}, "value_column"),  # not intersection-sum
        ({"payload_columns": ["a"]}, "payload_columns"),
        ({"country": "+999"}, "country"),
        ({"min_group_size": 0}, "min_group_size"),
        ({"min_group_size": True}, "min_group_size"),
        ({"min_group_size": 2.5}, "min_group_size"),
    ],
)
def test_params_errors_name_the_field(change: dict[str, Any], field_name: str) -> None:
    raw = params().to_json() | change
    with pytest.raises(psi.InvalidParams) as info:
        psi.PsiParams.from_json(raw)
    assert info.value.field == field_name
    assert isinstance(info.value, ValueError)


def test_mode_dependent_params() -> None:
    base = params().to_json()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mode": "intersection-sum"}, "value_column"),
        ({"mode": "intersection-sum", "value_column": 3}, "value_column"),
        ({"mode": "intersection-payload"}, "payload_columns"),
        ({"mode": "intersection-payload", "payload_columns": []}, "payload_columns"),
        ({"mode": "intersection-payload", "payload_columns": ["a", "a"]}, "payload_columns"),
        (
            {"mode": "intersection-payload", "payload_columns": [f"c{i}" for i in range(33)]},
            "payload_columns",
        ),
        ({"mode": "intersection-payload", "payload_columns": ["a", ""]}, "payload_columns[1]"),
    ]
    for change, field_name in cases:
        with pytest.raises(psi.InvalidParams) as info:
            psi.PsiParams.from_json(base | change)
        assert info.value.field == field_name, change
    for missing in ("mode", "identifier_kind", "requester_column", "responder_column"):
        with pytest.raises(psi.InvalidParams) as info:
            psi.PsiParams.from_json({k: v for k, v in base.items() if k != missing})
        assert info.value.field == missing
    with pytest.raises(psi.InvalidParams):
        psi.PsiParams.from_json([])  # type: ignore[arg-type]


def test_schema_matches_the_parser() -> None:
    schema = psi.PARAMETER_SCHEMA
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["required"]) == {
        "mode",
        "identifier_kind",
        "requester_column",
        "responder_column",
    }
    assert schema["properties"]["mode"]["enum"] == list(psi.MODES)
    assert schema["properties"]["identifier_kind"]["enum"] == list(identifiers.KINDS)


# ------------------------------------------------------------- what the wire carries


def _forbidden(kind: str, values: Sequence[str]) -> list[bytes]:
    """Every identifier in its raw and normalised form, and unkeyed hashes of its item."""
    tag = identifiers.identifier_tag(kind)
    out: list[bytes] = []
    for value in values:
        out.append(value.encode())
        normal = norm(kind, value)
        if normal is None:
            continue
        item = tag + normal.encode()
        out += [normal.encode(), normal.lstrip("+").encode(), item]
        for h in (hashlib.sha256(item).digest(), hashlib.sha512(item).digest()):
            out += [h, h[:16], h[:12]]
        out.append(ecdh_psi.hash_to_element(item))
        out.append(oprf.hash_to_group(item))
        out.append(oprf.hash_to_group(normal.encode()))
    return out


@pytest.mark.parametrize("mode", psi.MODES)
def test_responders_send_no_identifier_and_no_unkeyed_hash(mode: str) -> None:
    rng = random.Random(17)
    numbers = rng.sample(range(10**7), 24)
    req = [phone_variant(rng, phone(n)) for n in numbers[:16]]
    res = [phone_variant(rng, phone(n)) for n in numbers[8:]]
    k = 2 if mode in ("intersection", "cardinality") else 1
    data = [responder_table(res)] + [responder_table(res[4:])] * (k - 1)
    r = run(params(mode), requester_table(req), data)
    ok(r)
    payloads = r.responder_payloads()
    assert payloads
    for needle in _forbidden("phone", req + res):
        for payload in payloads:
            assert needle not in payload
    # and the requester sends only keyed elements and counts
    for sender, _, step, payload in r.network.sent:
        if sender == REQ:
            for needle in _forbidden("phone", req):
                assert needle not in payload, step


# ------------------------------------------------------------------ tampered messages


def _non_canonical_first(step_prefix: str) -> Callable[[str, str, bytes], bytes]:
    """Replace the first element of a stream's first chunk by a non-canonical encoding."""

    def tamper(peer: str, step: str, payload: bytes) -> bytes:
        if step == f"{step_prefix}/0":
            return b"\xff" * 32 + payload[32:]
        return payload

    return tamper


@pytest.mark.parametrize(
    ("party", "step", "mode"),
    [
        (REQ, "psi/req/1", "intersection"),
        ("r1", "psi/set", "intersection"),
        ("r1", "psi/set", "intersection-sum"),
        (REQ, "psi/opaque/req", "intersection-payload"),
        ("r1", "psi/opaque/resp", "intersection-payload"),
        ("r1", "psi/ring/1/1", "cardinality"),
    ],
)
def test_a_non_canonical_peer_element_is_a_protocol_error(party: str, step: str, mode: str) -> None:
    ids = [phone(n) for n in range(8)]
    k = 2 if step.startswith("psi/ring") else 1
    r = run(
        params(mode),
        requester_table(ids),
        [responder_table(ids[2:])] * k,
        wrap=lambda name, ch: (
            FaultyChannel(ch, tamper=_non_canonical_first(step)) if name == party else ch
        ),
        timeout=5,
    )
    assert r.result is None
    assert REQ in r.errors
    assert set(reasons(r).values()) == {"PROTOCOL_ERROR"}


def test_a_corrupted_payload_ciphertext_is_a_protocol_error() -> None:
    ids = [phone(n) for n in range(5)]

    def flip_last(peer: str, step: str, payload: bytes) -> bytes:
        return payload[:-1] + bytes([payload[-1] ^ 1]) if step == "psi/payload/0" else payload

    r = run(
        params("intersection-payload"),
        requester_table(ids),
        [responder_table(ids)],
        wrap=lambda name, ch: FaultyChannel(ch, tamper=flip_last) if name == "r1" else ch,
    )
    assert reasons(r) == {REQ: "PROTOCOL_ERROR"}
    assert "does not decrypt" in str(r.errors[REQ])


def test_a_lying_stream_header_is_a_protocol_error() -> None:
    ids = [phone(n) for n in range(8)]

    def inflate(peer: str, step: str, payload: bytes) -> bytes:
        if step == "psi/req/1/head":
            return json.dumps({"chunks": 1, "items": 9}).encode()
        return payload

    r = run(
        params("cardinality"),
        requester_table(ids),
        [responder_table(ids)],
        wrap=lambda name, ch: FaultyChannel(ch, tamper=inflate) if name == REQ else ch,
        timeout=5,
    )
    assert reasons(r) == {REQ: "PROTOCOL_ERROR", "r1": "PROTOCOL_ERROR"}


# ------------------------------------------------------------------ stream framing


def test_streams_of_several_chunks_and_malformed_headers() -> None:
    network = InMemoryNetwork(["a", "b"])
    a = psi._Session(network.channel("a"), 5, None, 1)
    b = psi._Session(network.channel("b"), 5, None, 1)
    records = [bytes([i]) * 32 for i in range(10)]
    psi._send_fixed(
        a, "b", "s", [b"".join(records[:3]), b"".join(records[3:])], 10, 32, chunk_items=3
    )
    assert [step for _, _, step, _ in network.sent] == ["s/head", "s/0", "s/1", "s/2", "s/3"]
    head, buffer = psi._receive_fixed(b, "a", "s", 32)
    assert head == psi._Head(4, 10) and buffer == b"".join(records)

    psi._send_records(a, "b", "v", [b"x" * n for n in (0, 5, 300)])
    assert psi._receive_records(b, "a", "v") == [b"", b"x" * 5, b"x" * 300]

    for bad in (
        b"not json",
        b"[]",
        b'{"chunks": 0, "items": 3}',
        b'{"chunks": 4, "items": 3}',
        b'{"chunks": 1, "items": -1}',
        b'{"chunks": 1, "items": 1, "extra": 1}',
        b'{"refused": "BECAUSE"}',
    ):
        network.channel("a").send("b", "h/head", bad)
        with pytest.raises(psi.PsiError) as info:
            psi._receive_head(b, "a", "h")
        assert info.value.reason == "PROTOCOL_ERROR", bad
    network.channel("a").send("b", "h/head", b'{"refused": "GROUP_TOO_SMALL"}')
    with pytest.raises(psi.PsiError) as info:
        psi._receive_head(b, "a", "h")
    assert info.value.reason == "GROUP_TOO_SMALL"

    # a chunk of the wrong width, or more records than announced
    network.channel("a").send("b", "w/head", b'{"chunks": 1, "items": 2}')
    network.channel("a").send("b", "w/0", b"x" * 33)
    with pytest.raises(psi.PsiError):
        psi._receive_fixed(b, "a", "w", 32)
    network.channel("a").send("b", "w/head", b'{"chunks": 1, "items": 1}')
    network.channel("a").send("b", "w/0", b"x" * 64)
    with pytest.raises(psi.PsiError):
        psi._receive_fixed(b, "a", "w", 32)


def test_result_json_shape() -> None:
    ids = [phone(n) for n in range(6)]
    result = ok(run(params(), requester_table(ids), [responder_table(ids[:3])]))
    assert result.to_json() == {
        "mode": "intersection",
        "identifierKind": "phone",
        "requesterItems": 6,
        "invalidRequesterRows": 0,
        "responderItems": [3],
        "minGroupSize": 1,
        "suppressed": False,
        "cardinality": 3,
        "intersection": sorted(identifiers.normalise("phone", i) for i in ids[:3]),
        "sum": None,
        "payload": None,
    }


# ------------------------------------------------------------- streaming and helpers


def test_identifier_items_tagged_and_untagged_follow_the_same_rules() -> None:
    """One helper gives both engines their items: the tagged form the DH-PSI hashes and
    the untagged normalised values psi_fast hands spu, deduplicated alike, in order of
    first occurrence, against the plaintext normal forms."""
    rng = random.Random(11)
    raw = [phone_variant(rng, phone(rng.randrange(40))) for _ in range(120)]
    raw += ["not a phone", "12"]
    data, columns = requester_table(raw)
    p = params()
    tagged, invalid = psi.identifier_items(p, data, columns, "id", "requester")
    plain, invalid_too = psi.identifier_items(p, data, columns, "id", "requester", tagged=False)
    expected = list(dict.fromkeys(v for v in (norm("phone", s) for s in raw) if v is not None))
    tag = identifiers.identifier_tag("phone")
    assert plain == [v.encode() for v in expected]
    assert tagged == [tag + v.encode() for v in expected]
    assert invalid == invalid_too == sum(norm("phone", s) is None for s in raw) == 2


@pytest.mark.parametrize("size", [0, 1, 2, 3, 50, 3000])
def test_distinct_values_keep_the_first_occurrence_order(size: int) -> None:
    rng = random.Random(size)
    values = [
        None if rng.random() < 0.1 else f"v{rng.randrange(max(size // 3, 1))}" for _ in range(size)
    ]
    expected = list(dict.fromkeys(v for v in values if v is not None))
    assert psi._distinct_values(pa.array(values, pa.string())).to_pylist() == expected


def _non_canonical_at(step_prefix: str, index: int) -> Callable[[str, str, bytes], bytes]:
    def tamper(peer: str, step: str, payload: bytes) -> bytes:
        if step == f"{step_prefix}/{index}":
            return b"\xff" * 32 + payload[32:]
        return payload

    return tamper


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
@pytest.mark.parametrize(("party", "step"), [(REQ, "psi/req/1"), ("r1", "psi/set")])
def test_a_bad_element_deep_in_a_stream_stops_both_sides(
    monkeypatch: pytest.MonkeyPatch, mode: str, party: str, step: str
) -> None:
    """Streams are sent while they are made, so a bad element found part-way (the third
    chunk here) is past the header: the refusal must take the next chunk's place and
    stop the peer with the reason, not leave it to time out."""
    monkeypatch.setattr(psi, "STREAM_CHUNK_ITEMS", 4)
    ids = [phone(n) for n in range(20)]
    r = run(
        params(mode),
        requester_table(ids),
        [responder_table(ids[5:])],
        wrap=lambda name, ch: (
            FaultyChannel(ch, tamper=_non_canonical_at(step, 2)) if name == party else ch
        ),
        timeout=5,
    )
    assert reasons(r) == {REQ: "PROTOCOL_ERROR", "r1": "PROTOCOL_ERROR"}
    other = "r1" if party == REQ else REQ
    refusals = [
        name
        for sender, _, name, payload in r.network.sent
        if sender == other and payload.startswith(b'{"refused"')
    ]
    assert len(refusals) == 1
    if mode == "intersection" or party == "r1":  # a stream that had begun: a chunk's place
        assert refusals[0].rsplit("/", 1)[1].isdigit(), refusals


def test_several_chunks_each_way_equal_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small chunks (the shape of a 10^7 run) on a pool: every stream is produced
    and consumed chunk by chunk, the result is the plaintext one."""
    monkeypatch.setattr(psi, "STREAM_CHUNK_ITEMS", 7)
    rng = random.Random(3)
    req = [phone(n) for n in rng.sample(range(10**5), 90)]
    res = req[:40] + [phone(n) for n in range(10**5, 10**5 + 55)]
    x, ys, _ = oracle_sets("phone", req, [res])
    with ecdh_psi.new_executor(2) as pool:
        for mode in ("intersection", "cardinality"):
            result = ok(
                run(
                    params(mode),
                    requester_table(req),
                    [responder_table(res)],
                    executor=pool,
                    processes=2,
                )
            )
            assert result.cardinality == len(x & ys[0])
            if mode == "intersection":
                assert result.intersection == tuple(sorted(x & ys[0]))
