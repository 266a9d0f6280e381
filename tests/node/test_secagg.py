"""The secure vector sum (node/crypto/secagg.py) over in-memory channels, one thread per party.

Checked: the secure sum equals the plain sum for n = 2..7 with every tolerated pattern
of dropouts; the threshold rule (table, brute-force model of the split attack,
refusal of a lower threshold); the collusion attack that broke the survivors-echo
protocol, written as the attacker would run it, succeeding at the old majority
threshold and failing at the new one; every way a certificate can be wrong; the
signature scheme; strict wire formats.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account

from node.channel import Channel, InMemoryNetwork, PeerTimeout
from node.crypto import masking, secagg, shamir
from tests.node.faulty_channel import Crashed, FaultyChannel
from tests.node.party_keys import account_of, identity, key_ring

AGG = "aggregator"
PURPOSE: dict[str, Any] = {"algorithm": "test-sum", "version": "1", "params": {}}
TASK = bytes(range(32))


def names_of(n: int) -> list[str]:
    return [f"p{i}" for i in range(1, n + 1)]


def make_session(
    net: InMemoryNetwork, me: str, names: Sequence[str], length: int, task: bytes = TASK
) -> secagg.Session:
    return secagg.session(net.channel(me), names, AGG, None, length, PURPOSE, task)


def ring_sum(vectors: Sequence[Sequence[int]], length: int) -> list[int]:
    return [sum(v[k] for v in vectors) % masking.MODULUS for k in range(length)]


# ------------------------------------------------------------------------------ harness


@dataclass
class SumRun:
    result: tuple[list[int], tuple[int, ...]] | BaseException
    errors: dict[str, BaseException | None]
    net: InMemoryNetwork

    def ok(self) -> tuple[list[int], tuple[int, ...]]:
        if isinstance(self.result, BaseException):
            raise AssertionError(f"aggregator failed: {self.result!r}; providers: {self.errors}")
        return self.result

    def sent_to_aggregator(self, step: str) -> dict[str, bytes]:
        return {src: p for src, dst, s, p in self.net.sent if dst == AGG and s == step}


def run_sum(
    vectors: Mapping[str, Sequence[int]],
    *,
    timeout: float = 1.5,
    faults: Mapping[str, dict[str, Any]] | None = None,
    threshold: int | None = None,
) -> SumRun:
    names = list(vectors)
    length = len(next(iter(vectors.values())))
    net = InMemoryNetwork([*names, AGG])
    ring = key_ring(names)
    errors: dict[str, BaseException | None] = {}

    def provider(name: str) -> None:
        channel: Channel = net.channel(name)
        if faults and name in faults:
            channel = FaultyChannel(channel, **faults[name])
        try:
            s = secagg.session(channel, names, AGG, threshold, length, PURPOSE, TASK)
            secagg.provide(channel, s, vectors[name], identity(name), timeout, verifier=ring)
            errors[name] = None
        except BaseException as exc:
            errors[name] = exc

    threads = [threading.Thread(target=provider, args=(n,), name=n, daemon=True) for n in names]
    for t in threads:
        t.start()
    result: tuple[list[int], tuple[int, ...]] | BaseException
    try:
        agg = net.channel(AGG)
        s = secagg.session(agg, names, AGG, threshold, length, PURPOSE, TASK)
        result = secagg.collect(agg, s, ring, timeout)
    except Exception as exc:
        result = exc
    for t in threads:
        t.join(timeout=4 * timeout + 5)
        assert not t.is_alive(), f"provider {t.name} hung"
    return SumRun(result, errors, net)


def random_vectors(rng: random.Random, names: Sequence[str], length: int) -> dict[str, list[int]]:
    return {n: [rng.randrange(-(2**100), 2**100) for _ in range(length)] for n in names}


# --------------------------------------------------------------------------- thresholds

# n: (c designed for, t, colluders tolerated at t, dropouts tolerated)
TABLE = {
    2: (1, 2, 1, 0),
    3: (1, 3, 2, 0),
    4: (1, 3, 1, 1),
    5: (1, 4, 2, 1),
    6: (1, 4, 1, 2),
    7: (2, 5, 2, 2),
    8: (2, 6, 3, 2),
    9: (2, 6, 2, 3),
    10: (3, 7, 3, 3),
}


def test_threshold_table_matches_the_rule_and_the_docstring() -> None:
    computed = {}
    for n in range(2, 11):
        t = secagg.threshold_for(n)
        c = secagg.default_colluders(n)
        assert c == max(1, (n - 1) // 3)
        # t is the smallest integer with 2t > n + c and t >= c + 1
        assert 2 * t > n + c and t >= c + 1 and t <= n
        assert t == 2 or not (2 * (t - 1) > n + c and t - 1 >= c + 1)
        computed[n] = (c, t, secagg.tolerated_colluders(n, t), n - t)
    assert computed == TABLE
    documented = {
        int(m[1]): (int(m[2]), int(m[3]), int(m[4]), int(m[5]))
        for m in re.finditer(
            r"^(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", secagg.__doc__ or "", re.MULTILINE
        )
    }
    assert documented == TABLE


def split_attack_possible(n: int, t: int, c: int) -> bool:
    """Brute force over what a malicious aggregator with c colluders can tell the n - c
    honest providers: group 1 is told a set containing the victim, group 2 a set without
    it, the rest something else. Colluders sign every set and hand over every share. A
    provider accepts its set iff t distinct members signed it; each accepting provider
    reveals one share of b_victim (group 1) or c_victim (group 2). The attack succeeds
    iff both secrets reach t shares."""
    honest = n - c
    for assignment in itertools.product((0, 1, 2), repeat=honest):
        group1, group2 = assignment.count(1), assignment.count(2)
        accepts1 = group1 + c >= t  # signatures on U1: group 1 plus the colluders
        accepts2 = group2 + c >= t
        b_shares = (group1 if accepts1 else 0) + c
        c_shares = (group2 if accepts2 else 0) + c
        if b_shares >= t and c_shares >= t:
            return True
    return False


@pytest.mark.parametrize("n", range(2, 10))
def test_default_threshold_blocks_every_split_and_a_lower_one_does_not(n: int) -> None:
    t = secagg.minimum_threshold(n)
    c = secagg.default_colluders(n)
    assert not split_attack_possible(n, t, c)
    for higher in range(t, n + 1):  # raising t never weakens it, for the tolerated c
        assert not split_attack_possible(n, higher, secagg.tolerated_colluders(n, higher))
    if t - 1 >= c + 1:  # one below the minimum (where shares would still be hidden)
        assert split_attack_possible(n, t - 1, c)
    old_majority = max(2, n // 2 + 1)  # the survivors-echo rule
    assert split_attack_possible(n, old_majority, c) == (old_majority < t)


def test_the_old_majority_rule_was_unsafe_for_most_n() -> None:
    unsafe = [
        n
        for n in range(2, 10)
        if split_attack_possible(n, max(2, n // 2 + 1), secagg.default_colluders(n))
    ]
    assert unsafe == [3, 5, 7, 8, 9]


def test_a_lower_threshold_is_refused_and_a_higher_one_accepted() -> None:
    assert secagg.threshold_for(5, 5) == 5
    assert secagg.tolerated_colluders(5, 5) == 4
    with pytest.raises(secagg.InvalidSession, match="threshold: 3 is below the safe minimum 4"):
        secagg.threshold_for(5, 3)
    with pytest.raises(secagg.InvalidSession, match="threshold: 6 exceeds") as info:
        secagg.threshold_for(5, 6)
    assert info.value.field == "threshold"
    with pytest.raises(secagg.InvalidSession, match="providers: need at least 2"):
        secagg.threshold_for(1)
    with pytest.raises(secagg.InvalidSession, match="providers: at most 255"):
        secagg.threshold_for(256)
    with pytest.raises(secagg.InvalidSession, match="threshold: must be an integer"):
        secagg.threshold_for(5, True)
    # The session refuses too, whoever builds it, before any message.
    net = InMemoryNetwork([*names_of(5), AGG])
    with pytest.raises(secagg.InvalidSession) as info:
        secagg.session(net.channel("p1"), names_of(5), AGG, 3, 1, PURPOSE, TASK)
    assert info.value.field == "threshold"
    with pytest.raises(secagg.InvalidSession, match="threshold"):
        secagg.Session(tuple(names_of(5)), AGG, 3, 1, bytes(32))
    assert net.sent == []


def test_session_validation_and_context_binding() -> None:
    names = names_of(3)
    net = InMemoryNetwork([*names, AGG])
    base = make_session(net, "p1", names, 4)
    assert base.threshold == 3 and base.providers == ("p1", "p2", "p3")
    assert make_session(net, "p2", list(reversed(names)), 4) == base  # order-independent
    others = [
        secagg.session(net.channel("p1"), names, AGG, None, 4, {**PURPOSE, "version": "2"}, TASK),
        secagg.session(net.channel("p1"), names, AGG, None, 5, PURPOSE, TASK),
        secagg.session(net.channel("p1"), names, AGG, None, 4, PURPOSE, bytes(32)),
        secagg.session(net.channel("p1"), names[:2], AGG, None, 4, PURPOSE, TASK),
    ]
    assert len({base.context, *(s.context for s in others)}) == 5
    bad: list[tuple[Callable[[], object], str]] = [
        (lambda: make_session(net, "p1", ["p1", "p1", "p2"], 4), "providers"),
        (lambda: make_session(net, "p1", ["p1", "p2", AGG], 4), "aggregator"),
        (lambda: make_session(net, "p1", ["p1", "p2", "ghost"], 4), "providers"),
        (lambda: make_session(net, "p1", names, 0), "length"),
        (lambda: make_session(net, "p1", names, secagg.MAX_LENGTH + 1), "length"),
        (lambda: secagg.Session(("p2", "p1"), AGG, 2, 1, bytes(32)), "providers"),
    ]
    for call, field_name in bad:
        with pytest.raises(secagg.InvalidSession) as info:
            call()
        assert info.value.field == field_name


# -------------------------------------------------------------------------- correctness


def dropout_scenarios() -> list[tuple[int, str]]:
    out = []
    for n in range(2, 8):
        out.append((n, "none"))
        if n - secagg.threshold_for(n) >= 1:
            out += [(n, "before"), (n, "after"), (n, "after-signing")]
        if n - secagg.threshold_for(n) >= 2:
            out.append((n, "mixed"))
    return out


@pytest.mark.parametrize(("n", "scenario"), dropout_scenarios())
def test_secure_sum_equals_plain_sum_with_tolerated_dropouts(n: int, scenario: str) -> None:
    """n - t providers drop: before sending the masked input (their input is left out,
    their pairwise masks removed), after it (their input counts, their self mask is
    removed), or after signing the survivor set (likewise)."""
    rng = random.Random(f"{n}-{scenario}")
    names = names_of(n)
    length = 5
    vectors = random_vectors(rng, names, length)
    drops = n - secagg.threshold_for(n)
    dropped = rng.sample(names, drops if scenario != "none" else 0)
    faults: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(dropped):
        if scenario == "before" or (scenario == "mixed" and k == 0):
            faults[name] = {"crash_on_send": secagg.STEP_MASKED}
        elif scenario == "after":
            faults[name] = {"crash_on_receive": secagg.STEP_SURVIVORS}
        else:
            faults[name] = {"crash_on_receive": secagg.STEP_CERTIFICATE}
    run = run_sum(vectors, faults=faults)
    total, survivors = run.ok()
    contributing = [p for p in names if faults.get(p, {}).get("crash_on_send") is None]
    assert survivors == tuple(names.index(p) for p in contributing)
    assert total == ring_sum([vectors[p] for p in contributing], length)
    assert [masking.signed(x) for x in total] == [
        sum(vectors[p][k] for p in contributing) for k in range(length)
    ]
    assert all(run.errors[p] is None for p in names if p not in faults), run.errors
    assert all(isinstance(run.errors[p], Crashed) for p in faults)
    # Never both secrets of one party, whatever dropped.
    kinds: dict[int, set[int]] = {}
    for payload in run.sent_to_aggregator(secagg.STEP_UNMASK).values():
        body = payload[2:]
        for k in range(body[0]):
            kinds.setdefault(body[1 + 34 * k], set()).add(body[2 + 34 * k])
    assert all(len(v) == 1 for v in kinds.values()), kinds


def test_one_dropout_too_many_stops_without_revealing_anything() -> None:
    names = names_of(5)  # t = 4
    vectors = random_vectors(random.Random(5), names, 2)
    crash = {"crash_on_send": secagg.STEP_MASKED}
    run = run_sum(vectors, timeout=1.0, faults={"p2": crash, "p4": crash})
    assert isinstance(run.result, secagg.BelowThreshold)
    assert (run.result.arrived, run.result.needed, run.result.missing) == (3, 4, ("p2", "p4"))
    assert all(isinstance(run.errors[p], secagg.BelowThreshold) for p in ("p1", "p3", "p5"))
    assert run.sent_to_aggregator(secagg.STEP_SIGNATURE) == {}
    assert run.sent_to_aggregator(secagg.STEP_UNMASK) == {}


def test_a_provider_whose_signature_does_not_verify_is_named() -> None:
    names = names_of(3)
    outsider = secagg.Identity(Account.create())

    def forge(peer: str, step: str, payload: bytes) -> bytes:
        if step != secagg.STEP_SIGNATURE:
            return payload
        return secagg.encode_signature(outsider.sign(bytes(32)))

    vectors = random_vectors(random.Random(3), names, 1)
    run = run_sum(vectors, timeout=1.0, faults={"p2": {"tamper": forge}})
    assert isinstance(run.result, secagg.ProtocolError)
    assert (run.result.peer, run.result.step) == ("p2", secagg.STEP_SIGNATURE)
    assert "signature on the survivor set does not verify" in str(run.result)
    assert run.sent_to_aggregator(secagg.STEP_UNMASK) == {}


def test_provide_refuses_bad_input_before_sending() -> None:
    names = names_of(2)
    net = InMemoryNetwork([*names, AGG])
    s = make_session(net, "p1", names, 2)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: secagg.provide(net.channel("p1"), s, [1], identity("p1")), "vector"),
        (lambda: secagg.provide(net.channel("p1"), s, [1, True], identity("p1")), "vector"),
        (lambda: secagg.provide(net.channel(AGG), s, [1, 2], identity("p1")), "providers"),
        # p1 named by its test name, not its address: the default AddressVerifier refuses.
        (lambda: secagg.provide(net.channel("p1"), s, [1, 2], identity("p1")), "identity"),
        (
            lambda: secagg.provide(
                net.channel("p1"), s, [1, 2], identity("p2"), verifier=key_ring(names)
            ),
            "identity",
        ),
        (lambda: secagg.collect(net.channel("p1"), s, key_ring(names)), "aggregator"),
    ]
    for call, field_name in cases:
        with pytest.raises(secagg.InvalidSession) as info:
            call()
        assert info.value.field == field_name
    assert net.sent == []


# ------------------------------------------------------------------- the collusion attack

ATTACK_NAMES = names_of(5)  # t = 4 by default; the old majority rule gave 3
COLLUDER = "p5"
HONEST = ["p1", "p2", "p3", "p4"]
LENGTH = 3


@dataclass
class Loot:
    """Everything the coalition holds: shares of each party's b and c, by party."""

    b: dict[str, dict[int, bytes]] = field(default_factory=dict)
    c: dict[str, dict[int, bytes]] = field(default_factory=dict)

    def add(self, party: str, kind: secagg.SecretKind, x: int, share: bytes) -> None:
        pool = self.b if kind == secagg.SecretKind.SELF_SEED else self.c
        pool.setdefault(party, {})[x] = share


def colluding_provider(net: InMemoryNetwork, s: secagg.Session, loot: Loot) -> None:
    """p5, as the attacker writes it: a well-behaved provider on the wire (so that no
    honest party notices anything), which hands the aggregator every share it receives."""
    me, ch = COLLUDER, net.channel(COLLUDER)
    n, t, i = len(s.providers), s.threshold, s.index(me)
    others = [p for p in s.providers if p != me]
    key_seed, self_seed = secrets.token_bytes(32), secrets.token_bytes(32)
    public = masking.public_key(key_seed)
    commitment = secagg.seed_commitment(s.context, me, self_seed)
    ch.send(AGG, secagg.STEP_COMMIT, secagg.encode_commit(s.context, public, commitment))
    for p in others:
        ch.send(p, secagg.STEP_KEYS, secagg.encode_keys(s.context, public))
    publics = {p: secagg.decode_keys(p, ch.receive(p, secagg.STEP_KEYS, 10))[1] for p in others}
    b_split, c_split = shamir.split(self_seed, t, n), shamir.split(key_seed, t, n)
    for p in others:
        k = s.index(p)
        ch.send(p, secagg.STEP_SHARES, secagg.encode_shares(k + 1, b_split[k][1], c_split[k][1]))
    for p in others:
        x, b_share, c_share = secagg.decode_shares(p, ch.receive(p, secagg.STEP_SHARES, 10))
        loot.add(p, secagg.SecretKind.SELF_SEED, x, b_share)
        loot.add(p, secagg.SecretKind.PAIRWISE_KEY, x, c_share)
    pairwise = [
        (
            masking.pairwise_sign(i, s.index(p)),
            masking.pairwise_seed(key_seed, publics[p], s.context, me, p),
        )
        for p in others
    ]
    y = masking.mask([0] * LENGTH, masking.self_mask_seed(self_seed, s.context, me), pairwise)
    keys = [public if p == me else publics[p] for p in s.providers]
    ch.send(AGG, secagg.STEP_MASKED, secagg.encode_masked(secagg.keyset_digest(s.context, keys), y))


@dataclass
class AttackOutcome:
    errors: dict[str, BaseException | None]
    revealed: dict[str, bytes]  # unmask answers the honest providers sent
    recovered: dict[str, list[int]]  # honest inputs the coalition computed exactly
    both_shares: list[str]  # honest parties of which the coalition holds t b- and c-shares
    threshold: int


def run_attack(told: Mapping[str, tuple[int, ...]], padded: bool = False) -> AttackOutcome:
    """A malicious aggregator plus p5 against honest p1..p4 running the real provider.

    The aggregator tells p1, p2 a survivor set containing p1 (so they reveal b-shares of
    p1) and p3, p4 one without p1 (so they reveal c-shares of p1), has p5 sign both sets,
    and forwards each honest provider every signature on its own set; ``padded`` also
    adds the other group's signatures to reach the threshold.
    """
    rng = random.Random(99)
    vectors = {n: [rng.randrange(-(2**60), 2**60) for _ in range(LENGTH)] for n in HONEST}
    net = InMemoryNetwork([*ATTACK_NAMES, AGG])
    ring = key_ring(ATTACK_NAMES)
    errors: dict[str, BaseException | None] = {}
    loot = Loot()

    def honest(name: str) -> None:
        try:
            s = make_session(net, name, ATTACK_NAMES, LENGTH)
            secagg.provide(net.channel(name), s, vectors[name], identity(name), 2.0, verifier=ring)
            errors[name] = None
        except Exception as exc:
            errors[name] = exc

    s = make_session(net, AGG, ATTACK_NAMES, LENGTH)
    threads = [threading.Thread(target=honest, args=(n,), daemon=True) for n in HONEST]
    threads.append(threading.Thread(target=colluding_provider, args=(net, s, loot), daemon=True))
    for th in threads:
        th.start()

    # The malicious aggregator.
    agg = net.channel(AGG)
    commits = {
        p: secagg.decode_commit(p, agg.receive(p, secagg.STEP_COMMIT, 10)) for p in ATTACK_NAMES
    }
    masked = {
        p: secagg.decode_masked(p, agg.receive(p, secagg.STEP_MASKED, 10), LENGTH)[1]
        for p in ATTACK_NAMES
    }
    for p, survivors in told.items():
        agg.send(p, secagg.STEP_SURVIVORS, secagg.encode_survivors(survivors))
    signatures = {
        p: secagg.decode_signature(p, agg.receive(p, secagg.STEP_SIGNATURE, 10)) for p in told
    }
    colluder = identity(COLLUDER)  # p5 signs whatever it is asked to
    for p, survivors in told.items():
        entries = {s.index(q): signatures[q] for q in told if told[q] == survivors}
        entries[s.index(COLLUDER)] = colluder.sign(secagg.survivors_digest(s.context, survivors))
        if padded:
            for q in told:
                entries.setdefault(s.index(q), signatures[q])
        agg.send(p, secagg.STEP_CERTIFICATE, secagg.encode_certificate(sorted(entries.items())))
    for th in threads:
        th.join(timeout=15)
        assert not th.is_alive()

    revealed = {
        src: payload
        for src, dst, step, payload in net.sent
        if dst == AGG and step == secagg.STEP_UNMASK
    }
    for p, payload in revealed.items():
        shares = secagg.decode_unmask(p, payload, len(ATTACK_NAMES), told[p])
        for k, share in enumerate(shares):
            kind = secagg.SecretKind.SELF_SEED if k in told[p] else secagg.SecretKind.PAIRWISE_KEY
            loot.add(ATTACK_NAMES[k], kind, s.index(p) + 1, share)

    t = s.threshold
    both = [p for p in HONEST if len(loot.b.get(p, {})) >= t and len(loot.c.get(p, {})) >= t]
    recovered = {}
    for p in both:
        b = shamir.combine(sorted(loot.b[p].items())[:t])
        c = shamir.combine(sorted(loot.c[p].items())[:t])
        _, public, commitment = commits[p]
        assert secagg.seed_commitment(s.context, p, b) == commitment
        assert masking.public_key(c) == public
        i = s.index(p)
        x = masking.add(masked[p], masking.prg(masking.self_mask_seed(b, s.context, p), LENGTH), -1)
        for j, q in enumerate(ATTACK_NAMES):
            if q != p:
                seed = masking.pairwise_seed(c, commits[q][1], s.context, p, q)
                x = masking.add(x, masking.prg(seed, LENGTH), -masking.pairwise_sign(i, j))
        recovered[p] = [masking.signed(v) for v in x]
        assert recovered[p] == vectors[p]  # the coalition's arithmetic is right
    return AttackOutcome(errors, revealed, recovered, both, t)


def test_attack_succeeds_at_the_old_majority_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only path: force the old rule (t = floor(n/2) + 1 = 3 for n = 5). Each group
    of two honest providers plus the colluder makes t signatures on its own set, every
    honest provider accepts, and the coalition learns every honest input exactly. (The
    survivors-echo rule accepted on exactly the same count: t - 1 echoes plus itself.)"""
    monkeypatch.setattr(secagg, "minimum_threshold", lambda n: n // 2 + 1)
    told = {"p1": (0, 1, 4), "p2": (0, 1, 4), "p3": (2, 3, 4), "p4": (2, 3, 4)}
    outcome = run_attack(told)
    assert outcome.threshold == 3
    assert outcome.errors == dict.fromkeys(HONEST)  # nobody noticed
    assert set(outcome.revealed) == set(HONEST)
    assert set(outcome.both_shares) == set(HONEST)
    assert set(outcome.recovered) == set(HONEST)  # exact inputs, checked in run_attack


@pytest.mark.parametrize("padded", [False, True], ids=["own-set-only", "padded"])
def test_attack_fails_at_the_new_threshold(padded: bool) -> None:
    """Same coalition at the default t = 4: a set needs 4 signers, at most one of them
    the colluder, so 3 honest signers per set, 6 > 4 honest providers. The best the
    aggregator can do (sets of size t, each group's signatures plus p5's, optionally
    padded with the other group's) is refused by every honest provider, naming it."""
    told = {"p1": (0, 1, 2, 4), "p2": (0, 1, 2, 4), "p3": (1, 2, 3, 4), "p4": (1, 2, 3, 4)}
    outcome = run_attack(told, padded=padded)
    assert outcome.threshold == 4
    assert outcome.revealed == {}  # no honest provider revealed a single share
    assert outcome.both_shares == [] and outcome.recovered == {}
    for name in HONEST:
        error = outcome.errors[name]
        assert isinstance(error, secagg.ProtocolError), outcome.errors
        assert (error.peer, error.step) == (AGG, secagg.STEP_CERTIFICATE)
        assert f"{secagg.STEP_CERTIFICATE!r} from {AGG}:" in str(error)
        assert str(error).endswith("refusing to reveal shares")
        if not padded:
            assert "3 signature(s) on survivor set" in str(error)
    if padded:
        assert "signature by p3 is not valid on survivor set [0, 1, 2, 4]" in str(
            outcome.errors["p1"]
        )
        assert "signature by p1, who is not in survivor set [1, 2, 3, 4]" in str(
            outcome.errors["p3"]
        )


# ------------------------------------------------------------------------- certificates


@dataclass
class CertificateCase:
    net: InMemoryNetwork
    session: secagg.Session
    survivors: tuple[int, ...]
    ring: secagg.KeyRingVerifier

    def sign(self, name: str, survivors: tuple[int, ...] | None = None) -> bytes:
        told = self.survivors if survivors is None else survivors
        return identity(name).sign(secagg.survivors_digest(self.session.context, told))

    def check(self, signatures: Sequence[tuple[int, bytes]]) -> None:
        secagg.verify_certificate(self.session, self.survivors, signatures, self.ring)


@pytest.fixture
def case() -> CertificateCase:
    names = names_of(5)  # t = 4
    net = InMemoryNetwork([*names, AGG])
    return CertificateCase(net, make_session(net, "p1", names, 2), (0, 1, 2, 3), key_ring(names))


def refused(case: CertificateCase, signatures: Sequence[tuple[int, bytes]], message: str) -> None:
    with pytest.raises(secagg.ProtocolError, match=re.escape(message)) as info:
        case.check(signatures)
    assert (info.value.peer, info.value.step) == (AGG, secagg.STEP_CERTIFICATE)
    assert str(info.value).endswith("refusing to reveal shares")


def test_a_valid_certificate_is_accepted(case: CertificateCase) -> None:
    good = [(k, case.sign(f"p{k + 1}")) for k in (0, 1, 2, 3)]
    case.check(good)  # raises if refused
    case.check(list(reversed(good)))  # order does not matter to the check
    refused(case, good[:3], "3 signature(s) on survivor set [0, 1, 2, 3], the threshold needs 4")


def test_forged_signatures_are_refused(case: CertificateCase) -> None:
    good = [(k, case.sign(f"p{k + 1}")) for k in (0, 1, 2)]
    outsider = secagg.Identity(Account.create())
    by_outsider = outsider.sign(secagg.survivors_digest(case.session.context, case.survivors))
    refused(case, [*good, (3, by_outsider)], "signature by p4 is not valid")
    refused(case, [*good, (3, case.sign("p1"))], "signature by p4 is not valid")  # p1's, as p4
    refused(case, [*good, (3, bytes(64) + b"\x1b")], "signature by p4 is not valid")
    flipped = bytearray(case.sign("p4"))
    flipped[10] ^= 1
    refused(case, [*good, (3, bytes(flipped))], "signature by p4 is not valid")


def test_duplicated_signatures_are_refused(case: CertificateCase) -> None:
    good = [(k, case.sign(f"p{k + 1}")) for k in (0, 1, 2)]
    refused(case, [*good, good[2]], "two signatures by p3")
    refused(case, [good[2], good[0], good[2], good[1]], "two signatures by p3")  # apart


def test_signatures_on_another_set_are_refused(case: CertificateCase) -> None:
    other_set = (0, 1, 2, 4)
    good = [(k, case.sign(f"p{k + 1}")) for k in (0, 1, 2)]
    refused(
        case,
        [*good, (3, case.sign("p4", other_set))],
        "signature by p4 is not valid on survivor set [0, 1, 2, 3]",
    )
    superset = (0, 1, 2, 3, 4)
    refused(
        case,
        [(k, case.sign(f"p{k + 1}", superset)) for k in range(4)],
        "signature by p1 is not valid",
    )


def test_signatures_by_non_members_are_refused(case: CertificateCase) -> None:
    good = [(k, case.sign(f"p{k + 1}")) for k in (0, 1, 2)]
    p5 = case.sign("p5")  # a valid signature by p5 on the right set, but p5 is not in U
    refused(case, [*good, (4, p5)], "signature by p5, who is not in survivor set [0, 1, 2, 3]")
    refused(case, [*good, (7, p5)], "signer index 7 is not a provider")


def test_signatures_from_a_previous_session_are_refused(case: CertificateCase) -> None:
    """Same parties, same survivor set, another task: the context differs, so do the
    signed digests."""
    previous = make_session(case.net, "p1", names_of(5), 2, task=bytes(32))
    assert previous.context != case.session.context
    old = [
        (k, identity(f"p{k + 1}").sign(secagg.survivors_digest(previous.context, case.survivors)))
        for k in range(4)
    ]
    refused(case, old, "signature by p1 is not valid on survivor set [0, 1, 2, 3] in this session")
    refused(case, [*old[:3], (3, case.sign("p4"))], "signature by p1 is not valid")


def scripted_aggregator_run(
    certificate: Callable[[secagg.Session, tuple[int, ...], dict[str, bytes]], bytes],
) -> dict[str, BaseException | None]:
    """Honest providers p1..p3 (t = 3) against an aggregator that follows the protocol up
    to the certificate and then sends ``certificate(session, U, signatures)``."""
    names = names_of(3)
    net = InMemoryNetwork([*names, AGG])
    ring = key_ring(names)
    errors: dict[str, BaseException | None] = {}

    def provider(name: str) -> None:
        try:
            s = make_session(net, name, names, 1)
            secagg.provide(net.channel(name), s, [7], identity(name), 2.0, verifier=ring)
            errors[name] = None
        except Exception as exc:
            errors[name] = exc

    threads = [threading.Thread(target=provider, args=(n,), daemon=True) for n in names]
    for th in threads:
        th.start()
    agg = net.channel(AGG)
    s = make_session(net, AGG, names, 1)
    for step in (secagg.STEP_COMMIT, secagg.STEP_MASKED):
        for name in names:
            agg.receive(name, step, 10)
    survivors = (0, 1, 2)
    for name in names:
        agg.send(name, secagg.STEP_SURVIVORS, secagg.encode_survivors(survivors))
    sigs = {n: secagg.decode_signature(n, agg.receive(n, secagg.STEP_SIGNATURE, 10)) for n in names}
    payload = certificate(s, survivors, sigs)
    for name in names:
        agg.send(name, secagg.STEP_CERTIFICATE, payload)
    for th in threads:
        th.join(timeout=10)
        assert not th.is_alive()
    assert [1 for _, dst, step, _ in net.sent if dst == AGG and step == secagg.STEP_UNMASK] == []
    return errors


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("duplicate", "signer indices must be strictly increasing"),
        ("previous-session", "signature by p1 is not valid"),
        ("truncated", "certificate length does not match its signature count"),
        ("bad-v", "signature recovery byte v=0"),
        ("wrong-type", "message type 8, expected 9"),
    ],
)
def test_providers_refuse_a_bad_certificate_naming_the_aggregator(name: str, message: str) -> None:
    def make(s: secagg.Session, survivors: tuple[int, ...], sigs: dict[str, bytes]) -> bytes:
        entries = [(k, sigs[f"p{k + 1}"]) for k in survivors]
        if name == "duplicate":  # raw bytes: the encoder refuses to write this
            body = bytes((3,)) + b"".join(
                bytes((k,)) + sig for k, sig in (*entries[:2], entries[1])
            )
            return bytes((secagg.WIRE_VERSION, secagg.MessageType.SURVIVOR_CERTIFICATE)) + body
        if name == "previous-session":
            old = make_session(
                InMemoryNetwork([*s.providers, AGG]), "p1", s.providers, 1, bytes(32)
            )
            digest = secagg.survivors_digest(old.context, survivors)
            return secagg.encode_certificate(
                [(k, identity(f"p{k + 1}").sign(digest)) for k in survivors]
            )
        payload = secagg.encode_certificate(entries)
        if name == "truncated":
            return payload[:-1]
        if name == "bad-v":
            return payload[:-1] + b"\x00"
        return secagg.encode_signature(entries[0][1])  # wrong-type

    errors = scripted_aggregator_run(make)
    for provider in names_of(3):
        error = errors[provider]
        assert isinstance(error, secagg.ProtocolError), errors
        assert (error.peer, error.step) == (AGG, secagg.STEP_CERTIFICATE)
        assert message in str(error)


# ---------------------------------------------------------------------------- signatures


def test_identity_and_verifiers() -> None:
    account = account_of("p1")
    me = secagg.Identity(account)
    digest = hashlib.sha256(b"x").digest()
    signature = me.sign(digest)
    assert len(signature) == 65 and signature[-1] in (27, 28)
    assert secagg.recover_signer(digest, signature) == account.address
    address_verifier = secagg.AddressVerifier()
    assert address_verifier.verify(account.address, digest, signature)
    assert address_verifier.verify(account.address.lower(), digest, signature)
    assert address_verifier.verify(account.address.upper().replace("0X", "0x"), digest, signature)
    assert not address_verifier.verify(account_of("p2").address, digest, signature)
    assert not address_verifier.verify("p1", digest, signature)
    assert not address_verifier.verify(account.address, bytes(32), signature)
    ring = key_ring(["p1", "p2"])
    assert ring.verify("p1", digest, signature)
    assert not ring.verify("p2", digest, signature)
    assert not ring.verify("p3", digest, signature)
    for garbage in (b"", signature[:64], bytes(65), signature[:64] + b"\x1d"):
        assert secagg.recover_signer(digest, garbage) is None
        assert not address_verifier.verify(account.address, digest, garbage)
    assert account.key.hex() not in repr(me) and account.address in repr(me)
    with pytest.raises(ValueError, match="32 bytes"):
        me.sign(b"short")


def test_the_signed_digest_binds_session_and_exact_set() -> None:
    context = bytes(range(32))
    digests = {
        secagg.survivors_digest(context, (0, 1, 2)),
        secagg.survivors_digest(context, (0, 1)),
        secagg.survivors_digest(context, (0, 1, 3)),
        secagg.survivors_digest(bytes(32), (0, 1, 2)),
    }
    assert len(digests) == 4
    expected = hashlib.sha256(
        b"provnet:secagg-survivor-set:v1\0" + context + bytes((3, 0, 1, 2))
    ).digest()
    assert secagg.survivors_digest(context, (0, 1, 2)) == expected


# ------------------------------------------------------------------------------- wire


def test_decoders_refuse_malformed_messages() -> None:
    context, key = bytes(32), bytes(range(32))
    sig = identity("p1").sign(context)
    v = bytes((secagg.WIRE_VERSION,))
    good = secagg.encode_keys(context, key)
    assert secagg.decode_keys("p", good) == (context, key)
    certificate = secagg.encode_certificate([(0, sig), (2, sig)])
    assert secagg.decode_certificate("p", certificate, 3) == [(0, sig), (2, sig)]
    assert secagg.decode_signature("p", secagg.encode_signature(sig)) == sig
    assert len(secagg.encode_signature(sig)) == 67
    assert len(certificate) == 2 + 1 + 2 * 66
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: secagg.decode_keys("p", good[:-1]), "body of 63 bytes, expected 64"),
        (lambda: secagg.decode_keys("p", good + b"x"), "body of 65 bytes"),
        (lambda: secagg.decode_keys("p", v), "truncated"),
        (lambda: secagg.decode_keys("p", b"\x01" + good[1:]), "wire version 1"),
        (
            lambda: secagg.decode_keys("p", secagg.encode_commit(context, key, context)),
            "message type 1",
        ),
        (lambda: secagg.decode_commit("p", b""), "truncated"),
        (lambda: secagg.decode_shares("p", secagg.encode_shares(1, key, key)[:-2]), "body of 63"),
        (
            lambda: secagg.decode_masked("p", secagg.encode_masked(context, [1, 2]), 3),
            "body of 68 bytes, expected 84",
        ),
        (lambda: secagg.decode_survivors("p", v + b"\x05\x02\x00", 3), "does not match its count"),
        (lambda: secagg.decode_survivors("p", v + b"\x05\x02\x01\x00", 3), "strictly increasing"),
        (lambda: secagg.decode_survivors("p", v + b"\x05\x01\x07", 3), "index 7 >= 3"),
        (lambda: secagg.decode_signature("p", v + b"\x08" + sig[:64]), "body of 64 bytes"),
        (lambda: secagg.decode_signature("p", v + b"\x08" + sig + b"\x00"), "body of 66 bytes"),
        (lambda: secagg.decode_signature("p", v + b"\x08" + sig[:64] + b"\x01"), "v=1"),
        (lambda: secagg.decode_signature("p", v + b"\x09" + sig), "message type 9, expected 8"),
        (lambda: secagg.decode_certificate("p", certificate[:-1], 3), "does not match its"),
        (lambda: secagg.decode_certificate("p", certificate + b"\x00", 3), "does not match its"),
        (lambda: secagg.decode_certificate("p", v + b"\x09\x00", 3), "does not match its"),
        (lambda: secagg.decode_certificate("p", v + b"\x09", 3), "does not match its"),
        (lambda: secagg.decode_certificate("p", certificate, 2), "signer index 2 >= 2"),
        (
            lambda: secagg.decode_certificate(
                "p", v + b"\x09\x02" + b"\x01" + sig + b"\x00" + sig, 3
            ),
            "signer indices must be strictly increasing",
        ),
        (
            lambda: secagg.decode_certificate("p", v + b"\x09\x01\x00" + sig[:64] + b"\x00", 3),
            "v=0",
        ),
        (
            lambda: secagg.decode_unmask(
                "p", secagg.encode_unmask([(0, secagg.SecretKind.PAIRWISE_KEY, key)]), 1, [0]
            ),
            "kind 1, expected 0",
        ),
        (
            lambda: secagg.decode_unmask(
                "p", secagg.encode_unmask([(1, secagg.SecretKind.SELF_SEED, key)]), 1, [0]
            ),
            "entry 0 is for party 1",
        ),
    ]
    for call, message in cases:
        with pytest.raises(secagg.ProtocolError, match=re.escape(message)) as info:
            call()
        assert info.value.peer == "p" and info.value.reason == "PROTOCOL_ERROR"
    # Length field and byte length disagree.
    forged = secagg.encode_masked(context, [1, 2])
    forged = forged[:34] + (3).to_bytes(4, "big") + forged[38:]
    with pytest.raises(secagg.MalformedMessage, match="vector of 3 elements, expected 2"):
        secagg.decode_masked("p", forged, 2)
    # The encoders refuse to write what the decoders would refuse to read.
    for bad in ([], [(1, sig), (0, sig)], [(0, sig), (0, sig)], [(0, sig[:64])]):
        with pytest.raises(ValueError):
            secagg.encode_certificate(bad)
    with pytest.raises(ValueError):
        secagg.encode_signature(sig[:64] + b"\x00")


def test_a_malformed_signature_message_stops_the_aggregator_naming_the_sender() -> None:
    def truncate(peer: str, step: str, payload: bytes) -> bytes:
        return payload[:-1] if step == secagg.STEP_SIGNATURE else payload

    vectors = {"p1": [1], "p2": [2]}
    run = run_sum(vectors, timeout=1.0, faults={"p2": {"tamper": truncate}})
    assert isinstance(run.result, secagg.MalformedMessage)
    assert (run.result.peer, run.result.step) == ("p2", secagg.STEP_SIGNATURE)
    assert "body of 64 bytes, expected 65" in str(run.result)
    assert run.sent_to_aggregator(secagg.STEP_UNMASK) == {}
    # Nobody got a certificate, so nobody revealed: p1 waits and times out.
    error = run.errors["p1"]
    assert isinstance(error, PeerTimeout) and error.step == secagg.STEP_CERTIFICATE
