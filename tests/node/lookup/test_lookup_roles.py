"""Key holders, publishers and queriers in process, against a plaintext union.

Every answer is compared with what a plain Python computation over the providers' raw
lists gives (dicts and sets of *normalised* identifiers), for 2, 3 and 10 providers with
overlaps, unnormalised spellings and one provider's key holder offline under t-of-n.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from node.algorithms.identifiers import id_check_digit, luhn_valid, normalise
from node.crypto import oprf
from node.crypto.threshold_oprf import KeyShare, ShareEvaluation
from node.lookup import inputs
from node.lookup.epoch import EpochDescriptor, EpochKeys, MixedBatch, run_dkg
from node.lookup.keyholder import KeyHolder
from node.lookup.publisher import OwnInput, check_inclusion, publish
from node.lookup.querier import Querier, ScreenProgress, UnionDownload
from node.lookup.union import Listing, Union, build_union

DAY = 86_400
NOW = 1_790_000_000
EPOCH = 7
UNION_NAME = "anti-fraud"  # one union carrying the blacklist, lending and verify lists
LABELS = ("fraud", "overdue-90", "mule-account", "identity-theft")
FW = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))  # full-width


# --- identifiers and their unnormalised spellings --------------------------------------


def phone(i: int) -> str:
    return f"+86138{i:08d}"


def phone_variant(canonical: str, rng: random.Random) -> str:
    d = canonical[3:]  # the 11 national digits
    return rng.choice(
        [
            f"{d[:3]} {d[3:7]} {d[7:]}",
            f"+86-{d[:3]}-{d[3:7]}-{d[7:]}",
            f"0086 {d}",
            d.translate(FW),
            f"(+86) {d}",
        ]
    )


def national_id(i: int) -> str:
    first17 = f"11010119{80 + i % 20:02d}0101{i:03d}"
    return first17 + id_check_digit(first17)


def id_variant(canonical: str, rng: random.Random) -> str:
    return rng.choice(
        [canonical[:6] + " " + canonical[6:14] + " " + canonical[14:], canonical.lower()]
    )


def card(i: int) -> str:
    body = f"622202{i:09d}"
    return next(body + str(c) for c in range(10) if luhn_valid(body + str(c)))


def card_variant(canonical: str, rng: random.Random) -> str:
    groups = [canonical[k : k + 4] for k in range(0, len(canonical), 4)]
    return rng.choice([" ".join(groups), "-".join(groups), canonical.translate(FW)])


def name(i: int) -> str:
    return f"Zhang San{i}"


def name_variant(canonical: str, rng: random.Random) -> str:
    return rng.choice([f"  {canonical.upper()} ", canonical.replace(" ", "   ").lower()])


VARIANT = {"phone": phone_variant, "national-id": id_variant, "card": card_variant}


def spell(kind: str, canonical: str, rng: random.Random) -> str:
    return VARIANT[kind](canonical, rng) if kind in VARIANT else canonical


# --- the plaintext world ----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One raw row of a provider's list: what a CSV would hold."""

    list_name: str
    kind: str
    raw: str
    labels: frozenset[str]
    event_time: int


@dataclass(frozen=True)
class Record:
    """One provider's verification record for a subject: raw element spellings."""

    subject: str  # raw national ID
    elements: dict[str, str]


@dataclass
class Plan:
    rows: list[list[Row]]
    records: list[list[Record]]
    phones: list[str]  # canonical pool (some never listed)
    ids: list[str]
    truth: dict[str, dict[str, str]]  # subject -> field -> canonical element


def make_plan(providers: int, seed: int, per_provider: int) -> Plan:
    rng = random.Random(seed)
    phones = [phone(rng.randrange(10**8)) for _ in range(3 * per_provider)]
    ids = [national_id(i) for i in rng.sample(range(1000), per_provider)]
    truth = {
        sid: {"name": name(k), "phone": phone(10**7 + k), "card": card(k)}
        for k, sid in enumerate(ids[: max(4, per_provider // 4)])
    }
    rows: list[list[Row]] = []
    records: list[list[Record]] = []
    for _ in range(providers):
        mine: list[Row] = []
        # Overlapping blacklist entries: phones from the first half of the pool, some IDs.
        for canonical in rng.sample(phones[: len(phones) // 2], per_provider):
            labels = frozenset(rng.sample(LABELS, rng.randint(0, 2)))
            t = NOW - rng.randint(0, 200 * DAY)
            mine.append(Row("blacklist", "phone", phone_variant(canonical, rng), labels, t))
        for canonical in rng.sample(ids, per_provider // 3):
            labels = frozenset(rng.sample(LABELS, 1))
            mine.append(Row("blacklist", "national-id", id_variant(canonical, rng), labels, NOW))
        # A duplicate listing in another spelling: merged (labels united, latest time).
        first = mine[0]
        mine.append(
            Row(
                "blacklist",
                "phone",
                phone_variant(normalise("phone", first.raw), rng),
                frozenset({"duplicate"}),
                first.event_time - rng.choice([-DAY, DAY]),
            )
        )
        # Lending within the last ~120 days, for the multi-head windows.
        for canonical in rng.sample(phones[: len(phones) // 3], per_provider // 2):
            t = NOW - rng.randint(0, 120 * DAY)
            mine.append(Row("lending", "phone", phone_variant(canonical, rng), frozenset(), t))
        rows.append(mine)
        recs: list[Record] = []
        for sid in rng.sample(sorted(truth), max(2, len(truth) // 2)):
            elements: dict[str, str] = {}
            for fld, value in truth[sid].items():
                if rng.random() < 0.7:
                    elements[fld] = value
            if rng.random() < 0.3:  # an outdated phone on this member's record
                elements["phone"] = phone(2 * 10**7 + rng.randrange(1000))
            recs.append(Record(id_variant(sid, rng), elements))
        records.append(recs)
    return Plan(rows, records, phones, ids, truth)


def oracle_membership(
    plan: Plan,
) -> dict[tuple[str, str, str], dict[int, tuple[frozenset[str], int]]]:
    """Per (list, kind, normalised value): per provider, merged labels and latest time."""
    out: dict[tuple[str, str, str], dict[int, tuple[frozenset[str], int]]] = {}
    for p, rows in enumerate(plan.rows):
        for row in rows:
            key = (row.list_name, row.kind, normalise(row.kind, row.raw))
            per = out.setdefault(key, {})
            old = per.get(p)
            per[p] = (
                (row.labels, row.event_time)
                if old is None
                else (old[0] | row.labels, max(old[1], row.event_time))
            )
    return out


def oracle_listings(per: dict[int, tuple[frozenset[str], int]]) -> list[Listing]:
    return sorted(Listing(t, tuple(sorted(labels))) for labels, t in per.values())


def oracle_elements(plan: Plan) -> dict[str, dict[str, set[str]]]:
    """Per normalised subject ID: per field, every normalised element some member holds."""
    out: dict[str, dict[str, set[str]]] = {}
    for recs in plan.records:
        for rec in recs:
            per = out.setdefault(normalise("national-id", rec.subject), {})
            for fld, value in rec.elements.items():
                per.setdefault(fld, set()).add(normalise(inputs.ELEMENT_KINDS[fld], value))
    return out


def provider_inputs(plan: Plan, p: int) -> list[OwnInput]:
    items = [
        OwnInput(inputs.membership_input(r.list_name, r.kind, r.raw), r.labels, r.event_time)
        for r in plan.rows[p]
    ]
    for rec in plan.records[p]:
        for fld, value in rec.elements.items():
            items.append(
                OwnInput(
                    inputs.element_input("national-id", rec.subject, fld, value), event_time=NOW
                )
            )
    return items


# --- the roles wired in process -----------------------------------------------------------


@dataclass
class Holders:
    """The providers' key holders, a hop that reaches the online ones, and what they saw."""

    keys: EpochKeys
    holders: list[KeyHolder]
    offline: set[int] = field(default_factory=set)
    seen: list[tuple[int, int, tuple[bytes, ...]]] = field(default_factory=list)
    calls: int = 0

    @classmethod
    def of(cls, keys: EpochKeys, shares: Sequence[KeyShare]) -> Holders:
        self = cls(keys, [])
        for share in shares:
            self.holders.append(KeyHolder(share, keys, on_batch=self._recorder(share.index)))
        return self

    def _recorder(self, index: int):  # type: ignore[no-untyped-def]
        def record(epoch: int, batch: tuple[bytes, ...]) -> None:
            self.seen.append((index, epoch, batch))

        return record

    def evaluate(self, epoch: int, blinded: list[bytes]) -> list[ShareEvaluation]:
        self.calls += 1
        return [h.evaluate(epoch, blinded) for h in self.holders if h.index not in self.offline]


@dataclass
class Scenario:
    plan: Plan
    holders: Holders
    union: Union
    anchor: EpochDescriptor
    fetched: list[int]

    def querier(self, **kwargs: object) -> Querier:
        def fetch(i: int) -> bytes:
            self.fetched.append(i)
            return self.union.buckets[i]

        return Querier(
            self.holders.keys,
            UnionDownload.of(self.union),
            fetch,
            self.holders.evaluate,
            anchor=self.anchor,
            **kwargs,  # type: ignore[arg-type]
        )


def build_scenario(providers: int, t: int, offline: int | None, per_provider: int) -> Scenario:
    plan = make_plan(providers, seed=1000 * providers + t, per_provider=per_provider)
    keys, shares = run_dkg(t, providers, epoch=EPOCH, list_name=UNION_NAME)
    holders = Holders.of(keys, shares)
    if offline is not None:
        holders.offline.add(offline)
    contributions = [
        publish(keys, provider_inputs(plan, p), holders.evaluate) for p in range(providers)
    ]
    union = build_union(EPOCH, contributions)  # the relay node, not a key holder
    # Every provider checks its own listings before signing off on the digest.
    digests = {check_inclusion(union, c, epoch=EPOCH) for c in contributions}
    assert digests == {union.digest}
    anchor = EpochDescriptor(EPOCH, keys.digest, union.digest)
    holders.seen.clear()
    return Scenario(plan, holders, union, anchor, [])


SCENARIOS = {
    "2-providers-t2": (2, 2, None, 40),
    "3-providers-t2-one-offline": (3, 2, 3, 30),
    "10-providers-t6-one-offline": (10, 6, 4, 12),
}


@pytest.fixture(scope="module", params=list(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return build_scenario(*SCENARIOS[request.param])


# --- correctness against the plaintext union -------------------------------------------------


def test_blacklist_hits_labels_multiplicity_match_plaintext(scenario: Scenario) -> None:
    plan = scenario.plan
    truth = oracle_membership(plan)
    rng = random.Random(5)
    queries = [("phone", c) for c in plan.phones] + [("national-id", c) for c in plan.ids]
    raw = [(kind, spell(kind, c, rng)) for kind, c in queries]
    querier = scenario.querier()
    calls = scenario.holders.calls
    answers = querier.batch(raw)
    assert scenario.holders.calls == calls + 1  # one evaluation round for the whole batch
    listed = 0
    for (kind, canonical), answer in zip(queries, answers, strict=True):
        per = truth.get(("blacklist", kind, normalise(kind, canonical)))
        assert answer.listed == (per is not None)
        assert answer.multiplicity == (len(per) if per else 0)
        assert list(answer.listings) == (oracle_listings(per) if per else [])
        listed += answer.listed
    assert 0 < listed < len(queries)  # both outcomes were exercised
    assert max(a.multiplicity for a in answers) > 1  # overlaps between providers
    # Single queries agree with the batch, with or without labels.
    kind, canonical = queries[0]
    single = querier.blacklist(kind, spell(kind, canonical, rng))
    assert single == answers[0]
    bare = querier.blacklist(kind, spell(kind, canonical, rng), labels=False)
    assert (bare.listed, bare.multiplicity, bare.listings) == (
        single.listed,
        single.multiplicity,
        (),
    )


def test_lending_is_not_the_blacklist(scenario: Scenario) -> None:
    """The same phone on two lists answers per list (inputs.py's domain separation)."""
    truth = oracle_membership(scenario.plan)
    querier = scenario.querier()
    pool = scenario.plan.phones[: len(scenario.plan.phones) // 2]
    for list_name in ("blacklist", "lending", "graylist"):
        answers = querier.batch([("phone", c) for c in pool], list_name=list_name, labels=False)
        for canonical, answer in zip(pool, answers, strict=True):
            per = truth.get((list_name, "phone", canonical))
            assert answer.listed == (per is not None)
            assert answer.multiplicity == (len(per) if per else 0)


def test_multihead_counts_match_plaintext_excluding_own(scenario: Scenario) -> None:
    plan = scenario.plan
    truth = oracle_membership(plan)
    rng = random.Random(6)
    querier = scenario.querier()
    asker = 0
    windows = (7, 30, 90)
    checked = 0
    for canonical in plan.phones[: len(plan.phones) // 3]:
        per = truth.get(("lending", "phone", canonical), {})
        own = [per[asker][1]] if asker in per else []
        answer = querier.multihead(
            "phone", phone_variant(canonical, rng), windows=windows, own_event_times=own, now=NOW
        )
        expected = {
            w: sum(1 for p, (_, t) in per.items() if p != asker and NOW - w * DAY < t <= NOW)
            for w in windows
        }
        assert dict(answer.counts) == expected
        checked += any(expected.values())
    assert checked > 0


def test_element_verification_matches_plaintext(scenario: Scenario) -> None:
    plan = scenario.plan
    held = oracle_elements(plan)
    rng = random.Random(7)
    querier = scenario.querier()
    asked = 0
    for sid, fields in plan.truth.items():
        elements = {
            "name": name_variant(fields["name"], rng),
            "phone": phone_variant(fields["phone"], rng),
            "card": card_variant(card(999_999), rng),  # nobody's card
        }
        answer = querier.verify("national-id", id_variant(sid, rng), elements)
        per = held.get(sid, {})
        expected = {
            f: normalise(inputs.ELEMENT_KINDS[f], v) in per.get(f, set())
            for f, v in elements.items()
        }
        assert dict(answer.matches) == expected
        asked += sum(expected.values())
    assert asked > 0


def test_screen_chunks_skip_bad_rows_and_match_plaintext(scenario: Scenario) -> None:
    plan = scenario.plan
    truth = oracle_membership(plan)
    rng = random.Random(8)
    items: list[tuple[str, str] | bytes] = []
    expected: list[bool | None] = []
    for k, canonical in enumerate(plan.phones):
        if k % 9 == 4:
            items.append(("phone", "12-34"))  # refused by the phone rule
            expected.append(None)
        if k % 11 == 3:  # a row already encoded by the screening file reader
            items.append(inputs.membership_input("blacklist", "phone", canonical))
        else:
            items.append(("phone", phone_variant(canonical, rng)))
        expected.append(("blacklist", "phone", canonical) in truth)
    reports: list[ScreenProgress] = []
    results = list(scenario.querier().screen(items, chunk_size=7, progress=reports.append))
    assert [r.position for r in results] == list(range(len(items)))
    for result, want in zip(results, expected, strict=True):
        if want is None:
            assert result.answer is None
            assert result.error is not None and "bad-" in result.error
        else:
            assert result.error is None and result.answer is not None
            assert result.answer.listed == want
    assert [r.rows for r in reports] == [min(len(items), 7 * (i + 1)) for i in range(len(reports))]
    assert reports[-1].skipped == expected.count(None)
    assert reports[-1].listed == sum(1 for e in expected if e)


def test_mixed_relay_batch_answers_the_same(scenario: Scenario) -> None:
    """A relay mixing several queriers' elements: proofs over the whole batch, own kept."""
    holders = scenario.holders
    rng = random.Random(9)

    def relayed(epoch: int, blinded: list[bytes]) -> MixedBatch:
        others = [oprf.blind(rng.randbytes(16))[1] for _ in range(5)]
        batch = blinded + others
        rng.shuffle(batch)
        return MixedBatch(batch, holders.evaluate(epoch, batch))

    direct = scenario.querier()
    mixed = Querier(
        holders.keys,
        UnionDownload.of(scenario.union),
        lambda i: scenario.union.buckets[i],
        relayed,
        anchor=scenario.anchor,
    )
    queries = [("phone", c) for c in scenario.plan.phones[:12]]
    assert mixed.batch(queries) == direct.batch(queries)


def test_labels_fetch_the_bucket_of_every_query_hit_or_miss(scenario: Scenario) -> None:
    """The bucket server sees a fetch per query whether or not it is listed."""
    truth = oracle_membership(scenario.plan)
    unlisted = [c for c in scenario.plan.phones if ("blacklist", "phone", c) not in truth][:3]
    scenario.fetched.clear()
    querier = scenario.querier()
    for canonical in unlisted:
        assert not querier.blacklist("phone", canonical).listed
    assert len(scenario.fetched) == len(unlisted)
