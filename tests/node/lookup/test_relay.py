"""The relay's scheduler, attacked as a key holder (who wants to know who asked) or a
querier (who wants free or broken answers) would.

Rules under test: a forwarded batch names no querier, is shuffled, is not released with
one querier's elements before ``max_delay`` and is then padded with valid dummies; the
end-to-end answer through the relay equals a direct threshold evaluation; quota
exhaustion holds, counts and logs nothing; replayed, unknown and malformed deliveries
are named errors that leave the batch deliverable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.crypto import oprf, threshold_oprf
from node.crypto.threshold_oprf import KeyShare, ShareEvaluation
from node.lookup.epoch import EpochKeys, MixedBatchError, verified_answers
from node.lookup.metering import Meter, MeterPolicy, QuotaExhausted
from node.lookup.query_log import QueryLog
from node.lookup.relay import (
    BatchAlreadyDelivered,
    EvaluationCountMismatch,
    ForwardBatch,
    InvalidEvaluation,
    InvalidRelayPolicy,
    InvalidSubmission,
    Relay,
    RelayConfigError,
    RelayPolicy,
    UnknownBatch,
)

T0 = 1_790_000_000.25
GRANTS = {org: bytes([n + 1]) * 32 for n, org in enumerate(("bank-a", "bank-b", "bank-c"))}
POLICY = RelayPolicy(min_batch=16, min_queriers=2, max_delay=2.0, max_batch=64, max_ticket=32)
T, N = 2, 3


@dataclasses.dataclass
class Setup:
    relay: Relay
    meter: Meter
    log: QueryLog


@pytest.fixture(scope="module")
def holders() -> tuple[list[KeyShare], EpochKeys]:
    """A 2-of-3 threshold key from the dealerless DKG."""
    dealings = {i: threshold_oprf.deal(T, N) for i in range(1, N + 1)}
    shares = [
        threshold_oprf.combine_dealings(
            j, {i: (d.commitments, d.shares[j]) for i, d in dealings.items()}
        )
        for j in range(1, N + 1)
    ]
    commitments = {i: d.commitments for i, d in dealings.items()}
    return shares, EpochKeys.from_commitments(5, "blacklist", T, N, commitments)


def make(tmp_path: Path, policy: RelayPolicy = POLICY, blocks: int = 10) -> Setup:
    meter = Meter(f"sqlite:///{tmp_path / 'relay.db'}", MeterPolicy(block_size=10))
    for n, (org, grant) in enumerate(GRANTS.items()):
        meter.add_blocks(org, "screening", grant, blocks, reference=n.to_bytes(32, "big"))
    log = QueryLog(meter.db, "relay")
    return Setup(Relay(meter, policy, epoch=5, query_log=log), meter, log)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = make(tmp_path)
    yield s
    s.meter.close()


def inputs(org: str, n: int) -> list[bytes]:
    return [f"{org}:id-{i}".encode() for i in range(n)]


def blind_all(values: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    pairs = [oprf.blind(x) for x in values]
    return [r for r, _ in pairs], [b for _, b in pairs]


def submit(s: Setup, org: str, elements: list[bytes], now: float = T0) -> bytes:
    return s.relay.submit(org, "screening", GRANTS[org], elements, now).ticket_id


def test_a_forwarded_batch_names_no_querier_and_mixes_orgs(setup: Setup) -> None:
    _, a = blind_all(inputs("bank-a", 10))
    _, b = blind_all(inputs("bank-b", 6))
    submit(setup, "bank-a", a)
    assert setup.relay.due(T0) is None  # 10 elements of one org: not enough, not mixed
    submit(setup, "bank-b", b)
    batch = setup.relay.due(T0)  # 16 elements from 2 orgs: goes at once, no padding
    assert batch is not None
    assert {f.name for f in dataclasses.fields(ForwardBatch)} == {"batch_id", "epoch", "elements"}
    assert sorted(batch.elements) == sorted(a + b)
    for name in ("bank-a", "bank-b", "screening"):
        assert name.encode() not in batch.batch_id + b"".join(batch.elements)
    for grant in GRANTS.values():
        assert grant not in batch.batch_id + b"".join(batch.elements)
    assert setup.relay.due(T0 + 100) is None  # nothing left


def test_order_is_shuffled(setup: Setup) -> None:
    """bank-a's elements were submitted first; they do not come out first."""
    prefixes = 0
    for round_ in range(4):
        _, a = blind_all(inputs("bank-a", 8))
        _, b = blind_all(inputs("bank-b", 8))
        submit(setup, "bank-a", a, T0 + round_)
        submit(setup, "bank-b", b, T0 + round_)
        batch = setup.relay.due(T0 + round_)
        assert batch is not None and sorted(batch.elements) == sorted(a + b)
        prefixes += set(batch.elements[:8]) == set(a)
    assert prefixes < 4  # all four in submission order: probability 12870^-4


def test_one_querier_is_held_until_max_delay_then_padded(setup: Setup) -> None:
    _, a = blind_all(inputs("bank-a", 20))  # more than min_batch, but a single org
    submit(setup, "bank-a", a[:5], T0)
    submit(setup, "bank-a", a[5:], T0 + 1.0)
    assert setup.relay.next_deadline() == T0 + POLICY.max_delay
    for moment in (T0, T0 + 0.5, T0 + 1.0, T0 + 1.999):
        assert setup.relay.due(moment) is None
    batch = setup.relay.due(T0 + 2.0)
    assert batch is not None and sorted(batch.elements) == sorted(a)  # 20 >= 16: no padding

    _, c = blind_all(inputs("bank-c", 3))
    submit(setup, "bank-c", c, T0 + 10)
    assert setup.relay.due(T0 + 11.9) is None
    padded = setup.relay.due(T0 + 12)
    assert padded is not None and len(padded.elements) == POLICY.min_batch
    dummies = [e for e in padded.elements if e not in c]
    assert len(dummies) == POLICY.min_batch - 3 and set(c) <= set(padded.elements)
    for dummy in dummies:  # valid, distinct, random points: evaluable like real elements
        oprf.check_element(dummy, "dummy")
    assert len(set(dummies)) == len(dummies)


def test_a_flood_from_one_bank_does_not_crowd_out_another(setup: Setup) -> None:
    floods = []
    for i in range(3):
        _, a = blind_all(inputs(f"bank-a{i}", 30))
        floods.append(a)
        submit(setup, "bank-a", a, T0 + i * 0.01)
    _, b = blind_all(inputs("bank-b", 2))
    submit(setup, "bank-b", b, T0 + 0.5)
    batch = setup.relay.due(T0 + 0.5)  # max_batch 64: two floods + bank-b's ticket
    assert batch is not None and set(b) <= set(batch.elements)
    assert len(batch.elements) == 62
    rest = setup.relay.due(T0 + 0.5)  # bank-a alone again: wait for max_delay
    assert rest is None
    rest = setup.relay.due(T0 + 2.5)
    assert rest is not None and sorted(rest.elements) == sorted(floods[2])


def test_through_the_relay_equals_a_direct_threshold_evaluation(
    setup: Setup, holders: tuple[list[KeyShare], EpochKeys]
) -> None:
    shares, keys = holders
    public = dict(keys.public_shares)
    xs = {"bank-a": inputs("bank-a", 5), "bank-b": inputs("bank-b", 4)}
    blinds, blinded, tickets = {}, {}, {}
    for org, values in xs.items():
        blinds[org], blinded[org] = blind_all(values)
        tickets[org] = submit(setup, org, blinded[org])
    batch = setup.relay.due(T0 + POLICY.max_delay)
    assert batch is not None and len(batch.elements) == POLICY.min_batch  # 9 real + 7 dummies
    # Holders 1 and 3 answer (holder 2 is offline).
    answers = [threshold_oprf.evaluate_share(shares[i], list(batch.elements)) for i in (0, 2)]
    routed = setup.relay.deliver(batch.batch_id, answers)
    assert {a.ticket_id for a in routed} == set(tickets.values())  # dummies go to no ticket
    for answer in routed:
        org = answer.querier_org
        own, dropped = verified_answers(keys, blinded[org], answer.mixed_batch())
        assert dropped == {}
        combined = threshold_oprf.combine(own, T)
        outputs = [
            oprf.finalize(x, r, e) for x, r, e in zip(xs[org], blinds[org], combined, strict=True)
        ]
        # Oracle: the same inputs evaluated directly by holders 2 and 3, no relay.
        r2, b2 = blind_all(xs[org])
        direct = [threshold_oprf.evaluate_share(shares[i], b2) for i in (1, 2)]
        assert outputs == threshold_oprf.finalize_threshold(xs[org], r2, direct, T, public)


def test_a_querier_detects_a_bad_holder_or_misrouted_answer(
    setup: Setup, holders: tuple[list[KeyShare], EpochKeys]
) -> None:
    shares, keys = holders
    _, a = blind_all(inputs("bank-a", 8))
    _, b = blind_all(inputs("bank-b", 8))
    submit(setup, "bank-a", a)
    submit(setup, "bank-b", b)
    batch = setup.relay.due(T0)
    assert batch is not None
    honest = threshold_oprf.evaluate_share(shares[0], list(batch.elements))
    cheat = threshold_oprf.evaluate_share(shares[1], list(batch.elements))
    forged = list(cheat.evaluated_elements)
    forged[3] = honest.evaluated_elements[3]  # another holder's answer at one position
    routed = setup.relay.deliver(batch.batch_id, [honest, ShareEvaluation(2, forged, cheat.proof)])
    answer = next(r for r in routed if r.querier_org == "bank-a")
    valid, dropped = verified_answers(keys, a, answer.mixed_batch())
    assert [e.index for e in valid] == [1] and set(dropped) == {2}  # named, not used
    swapped = dataclasses.replace(answer, positions=answer.positions[::-1])
    with pytest.raises(MixedBatchError):
        verified_answers(keys, a, swapped.mixed_batch())
    with pytest.raises(MixedBatchError):
        verified_answers(keys, b, answer.mixed_batch())  # bank-b's elements, bank-a's answer
    stranger = dataclasses.replace(
        answer, evaluations=(ShareEvaluation(9, honest.evaluated_elements, honest.proof),)
    )
    assert verified_answers(keys, a, stranger.mixed_batch())[1] == {
        9: "not a key holder of this epoch"
    }


def test_deliver_refuses_replays_unknown_batches_and_wrong_counts(
    setup: Setup, holders: tuple[list[KeyShare], EpochKeys]
) -> None:
    shares, _ = holders
    _, a = blind_all(inputs("bank-a", 3))
    submit(setup, "bank-a", a)
    batch = setup.relay.due(T0 + 5)
    assert batch is not None
    good = [threshold_oprf.evaluate_share(s, list(batch.elements)) for s in shares[:2]]
    with pytest.raises(UnknownBatch):
        setup.relay.deliver(b"\x00" * 16, good)
    short = ShareEvaluation(1, good[0].evaluated_elements[:-1], good[0].proof)
    with pytest.raises(EvaluationCountMismatch, match="holder 1 answered 15"):
        setup.relay.deliver(batch.batch_id, [short, good[1]])
    with pytest.raises(InvalidEvaluation, match="twice"):
        setup.relay.deliver(batch.batch_id, [good[0], good[0]])
    with pytest.raises(InvalidEvaluation, match="proof"):
        setup.relay.deliver(batch.batch_id, [ShareEvaluation(1, good[0].evaluated_elements, b"")])
    with pytest.raises(InvalidEvaluation):
        setup.relay.deliver(batch.batch_id, [])
    # None of that consumed the batch: the real answer still routes, once.
    routed = setup.relay.deliver(batch.batch_id, good)
    assert [r.positions for r in routed] == [tuple(batch.elements.index(e) for e in a)]
    with pytest.raises(BatchAlreadyDelivered):
        setup.relay.deliver(batch.batch_id, good)


def test_quota_exhaustion_holds_counts_and_logs_nothing(tmp_path: Path) -> None:
    s = make(tmp_path, blocks=1)  # 10 queries each
    _, a = blind_all(inputs("bank-a", 12))
    submit(s, "bank-a", a[:8])
    with pytest.raises(QuotaExhausted, match=GRANTS["bank-a"].hex()):
        submit(s, "bank-a", a[8:])  # 8 + 4 > 10: refused whole
    assert s.relay.waiting() == 8
    assert s.meter.usage("bank-a", "screening", GRANTS["bank-a"]).used == 8
    assert len(s.log.records()) == 8
    assert all(r.querier_org == "bank-a" and r.epoch == 5 for r in s.log.records())
    # Bad elements are refused before anything is charged: one would sink a whole batch.
    identity = bytes(32)
    non_canonical = b"\xff" * 32
    for bad in ([identity], [a[9], non_canonical], [], a[:1] * 33, [b"short"]):
        with pytest.raises(InvalidSubmission):
            submit(s, "bank-a", bad)
    with pytest.raises(InvalidSubmission, match="now"):
        s.relay.submit("bank-a", "screening", GRANTS["bank-a"], a[8:9], float("inf"))
    assert s.relay.waiting() == 8 and len(s.log.records()) == 8
    assert s.meter.usage("bank-a", "screening", GRANTS["bank-a"]).used == 8
    s.meter.close()


def test_policy_and_configuration_errors_are_named(tmp_path: Path) -> None:
    for kwargs, field in [
        ({"min_batch": 0}, "min_batch"),
        ({"min_queriers": 0}, "min_queriers"),
        ({"max_delay": 0}, "max_delay"),
        ({"max_delay": float("nan")}, "max_delay"),
        ({"min_batch": 100, "max_batch": 50, "max_ticket": 50}, "min_batch"),
        ({"max_ticket": 2000}, "max_ticket"),
        ({"max_batch": 2**17, "max_ticket": 8}, "max_batch"),
    ]:
        with pytest.raises(InvalidRelayPolicy, match=field):
            RelayPolicy(**kwargs)  # type: ignore[arg-type]
    defaults = RelayPolicy()
    assert (defaults.min_batch, defaults.min_queriers, defaults.max_delay) == (64, 2, 2.0)
    meter = Meter(f"sqlite:///{tmp_path / 'm.db'}")
    elsewhere = QueryLog(f"sqlite:///{tmp_path / 'l.db'}", "relay")
    with pytest.raises(RelayConfigError, match="share the meter"):
        Relay(meter, query_log=elsewhere)
    meter.close()
    elsewhere.close()
