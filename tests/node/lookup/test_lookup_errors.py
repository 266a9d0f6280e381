"""Bad input to the lookup roles: each refusal is a named error and nothing is half done."""

from __future__ import annotations

import dataclasses

import pytest

from node.algorithms.identifiers import InvalidIdentifier, UnknownIdentifierKind
from node.crypto import oprf, threshold_oprf
from node.crypto.threshold_oprf import KeyShare, ShareEvaluation
from node.lookup import inputs
from node.lookup.epoch import (
    DkgComplaintError,
    DkgError,
    EpochDescriptor,
    EpochKeys,
    EpochKeysFormatError,
    EpochKeysMismatch,
    MixedBatch,
    StaleEpochError,
    TooFewHoldersError,
    evaluate_obliviously,
    keys_from_dealings,
    run_dkg,
)
from node.lookup.keyholder import KeyHolder, MalformedBatchError
from node.lookup.publisher import (
    InclusionError,
    OwnInput,
    PublishError,
    check_inclusion,
    publish,
)
from node.lookup.querier import Querier, QueryError, UnionDownload, WrongListError
from node.lookup.union import Contribution, Entry, Union, UnionDigestMismatch, build_union
from tests.node.lookup.test_lookup_roles import (
    EPOCH,
    NOW,
    Holders,
    Scenario,
    build_scenario,
    phone,
)


@pytest.fixture(scope="module")
def world() -> Scenario:
    return build_scenario(3, 2, None, 20)


@pytest.fixture
def fresh(world: Scenario) -> Scenario:
    world.holders.offline.clear()
    world.holders.calls = 0
    world.holders.seen.clear()
    return world


def listed_phone(world: Scenario) -> str:
    querier = world.querier()
    answers = querier.batch([("phone", c) for c in world.plan.phones], labels=False)
    return next(c for c, a in zip(world.plan.phones, answers, strict=True) if a.listed)


# --- malformed identifiers: the identifiers module's error, nothing sent -------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.blacklist("phone", "138-0013-800x"),
        lambda q: q.batch([("phone", "13800138000"), ("national-id", "11010119900101123")]),
        lambda q: q.verify("national-id", "110101199001011234", {"phone": "13800138000"}),
        lambda q: q.multihead("phone", "+86 0"),
    ],
)
def test_malformed_identifier_is_refused_before_anything_is_sent(fresh: Scenario, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidIdentifier) as info:
        call(fresh.querier())
    assert fresh.holders.calls == 0
    assert "13800138000" not in str(info.value) and "1101011990" not in str(info.value)


def test_unknown_kind_list_or_element_is_named(fresh: Scenario) -> None:
    querier = fresh.querier()
    with pytest.raises(UnknownIdentifierKind):
        querier.blacklist("passport", "E1234567")
    with pytest.raises(inputs.UnknownListError):
        querier.blacklist("phone", "13800138000", list_name="whitelist")
    with pytest.raises(inputs.UnknownElementError):
        querier.verify("national-id", "11010119900101123X", {"shoe-size": "42"})
    with pytest.raises(QueryError):
        querier.verify("national-id", "11010119900101123X", {})
    with pytest.raises(QueryError):
        querier.multihead("phone", "13800138000", windows=(0,))
    with pytest.raises(QueryError):
        querier.screen([("phone", "13800138000")], chunk_size=0)
    assert fresh.holders.calls == 0


def test_single_list_union_refuses_other_lists(fresh: Scenario) -> None:
    keys, shares = run_dkg(2, 3, epoch=EPOCH, list_name="blacklist")
    holders = Holders.of(keys, shares)
    union = build_union(EPOCH, [])
    anchor = EpochDescriptor(EPOCH, keys.digest, union.digest)
    querier = Querier(
        keys, UnionDownload.of(union), lambda i: union.buckets[i], holders.evaluate, anchor=anchor
    )
    with pytest.raises(WrongListError):
        querier.multihead("phone", "13800138000")
    with pytest.raises(WrongListError):
        querier.verify("national-id", "11010119900101123X", {"phone": "13800138000"})
    assert not querier.blacklist("phone", "13800138000").listed
    assert holders.calls == 1


# --- epochs, anchors and digests ---------------------------------------------------------


def test_stale_epoch_is_refused_by_holders(fresh: Scenario) -> None:
    keys2, shares2 = run_dkg(2, 3, epoch=EPOCH + 1, list_name=fresh.holders.keys.list_name)
    rotated = Holders.of(keys2, shares2)
    querier = Querier(
        fresh.holders.keys,
        UnionDownload.of(fresh.union),
        lambda i: fresh.union.buckets[i],
        rotated.evaluate,
        anchor=fresh.anchor,
    )
    with pytest.raises(StaleEpochError) as info:
        querier.blacklist("phone", phone(1))
    assert (info.value.asked, info.value.current) == (EPOCH, EPOCH + 1)
    assert "stale" in str(info.value)
    assert rotated.seen == []
    holder = fresh.holders.holders[0]
    element = oprf.blind(b"x")[1]
    with pytest.raises(StaleEpochError, match="not known"):
        holder.evaluate(EPOCH + 1, [element])
    assert fresh.holders.seen == []


def test_union_or_keys_not_matching_the_anchor_are_refused(fresh: Scenario) -> None:
    keys = fresh.holders.keys
    download = UnionDownload.of(fresh.union)

    def make(download: UnionDownload = download, anchor: EpochDescriptor = fresh.anchor) -> None:
        Querier(keys, download, lambda i: b"", fresh.holders.evaluate, anchor=anchor)

    table = bytearray(download.table_bytes)
    table[3] ^= 1
    with pytest.raises(UnionDigestMismatch):
        make(dataclasses.replace(download, table_bytes=bytes(table)))
    with pytest.raises(UnionDigestMismatch):
        make(dataclasses.replace(download, bucket_digests=download.bucket_digests[:-1]))
    with pytest.raises(UnionDigestMismatch):
        make(dataclasses.replace(download, epoch=EPOCH + 1))
    with pytest.raises(UnionDigestMismatch):
        make(anchor=dataclasses.replace(fresh.anchor, union_digest=bytes(32)))
    other_keys, _ = run_dkg(2, 3, epoch=EPOCH, list_name=keys.list_name)
    with pytest.raises(EpochKeysMismatch):
        make(anchor=dataclasses.replace(fresh.anchor, keys_digest=other_keys.digest))
    assert fresh.holders.calls == 0


def test_tampered_bucket_is_refused(fresh: Scenario) -> None:
    def tampered(i: int) -> bytes:
        bucket = bytearray(fresh.union.buckets[i])
        bucket[-1] ^= 1
        return bytes(bucket)

    querier = Querier(
        fresh.holders.keys,
        UnionDownload.of(fresh.union),
        tampered,
        fresh.holders.evaluate,
        anchor=fresh.anchor,
    )
    with pytest.raises(UnionDigestMismatch, match="bucket"):
        querier.blacklist("phone", listed_phone(fresh))


def test_false_positive_tag_without_record_is_not_listed(fresh: Scenario) -> None:
    """A tag in the table whose record does not open is reported as not listed."""
    x = listed_phone(fresh)
    # The real table says x is listed, but no bucket holds its record (a stray tag).
    crafted = Union(EPOCH, fresh.union.table, build_union(EPOCH, [], bucket_count=1).buckets)
    anchor = EpochDescriptor(EPOCH, fresh.holders.keys.digest, crafted.digest)
    querier = Querier(
        fresh.holders.keys,
        UnionDownload.of(crafted),
        lambda i: crafted.buckets[i],
        fresh.holders.evaluate,
        anchor=anchor,
    )
    assert querier.blacklist("phone", x, labels=False).listed  # the table alone says yes
    answer = querier.blacklist("phone", x)
    assert (answer.listed, answer.multiplicity, answer.listings) == (False, 0, ())


# --- key holders that fail --------------------------------------------------------------


def _cheating(holders: Holders, index: int, mode: str):  # type: ignore[no-untyped-def]
    """A hop where holder ``index`` answers with another key or alters an element."""

    def evaluate(epoch: int, blinded: list[bytes]) -> list[ShareEvaluation]:
        answers = holders.evaluate(epoch, blinded)
        out = []
        for answer in answers:
            if answer.index == index:
                if mode == "key":
                    rogue = KeyShare(index, oprf.random_scalar(), holders.keys.public_shares[index])
                    answer = threshold_oprf.evaluate_share(rogue, blinded)
                else:
                    elements = list(answer.evaluated_elements)
                    elements[0] = oprf.blind(b"other")[1]
                    answer = ShareEvaluation(index, elements, answer.proof)
            out.append(answer)
        return out

    return evaluate


@pytest.mark.parametrize("mode", ["key", "element"])
def test_failed_proof_drops_and_names_the_holder(fresh: Scenario, mode: str) -> None:
    honest = fresh.querier().batch([("phone", c) for c in fresh.plan.phones[:10]])
    dropped: list[tuple[int, str]] = []
    querier = Querier(
        fresh.holders.keys,
        UnionDownload.of(fresh.union),
        lambda i: fresh.union.buckets[i],
        _cheating(fresh.holders, 1, mode),
        anchor=fresh.anchor,
        on_dropped=lambda i, why: dropped.append((i, why)),
    )
    assert querier.batch([("phone", c) for c in fresh.plan.phones[:10]]) == honest
    assert [i for i, _ in dropped] == [1]
    assert "holder 1" in dropped[0][1]
    # With holder 3 offline as well, only holder 2 is left: named error, no answer.
    fresh.holders.offline.add(3)
    with pytest.raises(TooFewHoldersError) as info:
        querier.blacklist("phone", phone(1))
    assert info.value.valid == (2,) and set(info.value.dropped) == {1}


def test_too_few_holders_online(fresh: Scenario) -> None:
    fresh.holders.offline.update({1, 3})
    with pytest.raises(TooFewHoldersError, match="need verified answers from 2"):
        fresh.querier().blacklist("phone", phone(1))


def test_holder_refuses_malformed_batches_and_logs_nothing(fresh: Scenario) -> None:
    holder = fresh.holders.holders[1]
    good = oprf.blind(b"x")[1]
    for batch in ([], [good, b"\x01" * 31], [good, bytes(32)], [good, b"\xff" * 32], [good, "ab"]):
        with pytest.raises(MalformedBatchError):
            holder.evaluate(EPOCH, batch)  # type: ignore[arg-type]
    assert fresh.holders.seen == []
    holder.evaluate(EPOCH, [good])
    assert fresh.holders.seen == [(2, EPOCH, (good,))]


def test_holder_with_a_share_of_another_key_is_refused(fresh: Scenario) -> None:
    _, other_shares = run_dkg(2, 3, epoch=EPOCH)
    with pytest.raises(EpochKeysMismatch):
        KeyHolder(other_shares[0], fresh.holders.keys)


def test_mixed_batch_missing_own_elements_is_refused(fresh: Scenario) -> None:
    def relayed(epoch: int, blinded: list[bytes]) -> MixedBatch:
        batch = [*blinded[1:], oprf.blind(b"someone else")[1]]
        return MixedBatch(batch, fresh.holders.evaluate(epoch, batch))

    with pytest.raises(ValueError, match="does not contain"):
        evaluate_obliviously(fresh.holders.keys, [b"a", b"b"], relayed)

    def misrouted(epoch: int, blinded: list[bytes]) -> MixedBatch:
        batch = [*blinded, oprf.blind(b"someone else")[1]]
        return MixedBatch(batch, fresh.holders.evaluate(epoch, batch), positions=[1, 0])

    with pytest.raises(ValueError, match="claimed positions"):
        evaluate_obliviously(fresh.holders.keys, [b"a", b"b"], misrouted)


# --- DKG and key material -----------------------------------------------------------------


def test_dkg_complaint_names_the_dealer_and_exclusion_recovers() -> None:
    dealings = {i: threshold_oprf.deal(2, 3) for i in (1, 2, 3)}
    bad = dealings[2]
    shares = dict(bad.shares)
    shares[3] = oprf.random_scalar()
    dealings[2] = threshold_oprf.Dealing(bad.commitments, shares)
    with pytest.raises(DkgComplaintError) as info:
        keys_from_dealings(EPOCH, "blacklist", 2, 3, dealings)
    assert info.value.dealers == {2}
    assert info.value.complaints == {2: (3,)}
    keys, key_shares = keys_from_dealings(EPOCH, "blacklist", 2, 3, dealings, exclude={2})
    holders = Holders.of(keys, key_shares)
    x = [b"one", b"two"]
    outputs = []
    for offline in (1, 2, 3):  # every t-subset gives the same PRF: one key
        holders.offline = {offline}
        outputs.append(evaluate_obliviously(keys, x, holders.evaluate))
    assert outputs[0] == outputs[1] == outputs[2]
    keys.check_commitments({d: dealings[d].commitments for d in (1, 3)})
    with pytest.raises(EpochKeysMismatch):
        keys.check_commitments({d: dealings[d].commitments for d in (1, 2, 3)})
    with pytest.raises(DkgError):
        keys_from_dealings(EPOCH, "blacklist", 2, 3, dealings, exclude={1, 2})


def test_epoch_keys_json_round_trip_and_refusals() -> None:
    keys, _ = run_dkg(2, 3, epoch=EPOCH)
    data = keys.to_json()
    assert EpochKeys.from_json(data) == keys
    assert EpochKeys.from_json(data).digest == keys.digest
    changed = dict(data, t=3)
    assert EpochKeys.from_json(changed).digest != keys.digest
    for bad in (
        dict(data, version=2),
        dict(data, public_key="00" * 32),
        dict(data, public_key=data["public_key"].upper()),
        dict(data, public_shares={"1": data["public_shares"]["1"]}),
        dict(data, t=4),
        dict(data, list_name="Black List"),
        {k: v for k, v in data.items() if k != "epoch"},
    ):
        with pytest.raises(EpochKeysFormatError):
            EpochKeys.from_json(bad)
    descriptor = EpochDescriptor(EPOCH, keys.digest, bytes(range(32)))
    assert EpochDescriptor.from_json(descriptor.to_json()) == descriptor
    with pytest.raises(EpochKeysFormatError):
        EpochDescriptor.from_json(dict(descriptor.to_json(), keys_digest="ab"))


# --- publishing and inclusion ------------------------------------------------------------


def test_publish_refuses_bad_rows_before_sending(fresh: Scenario) -> None:
    keys = fresh.holders.keys
    good = OwnInput(inputs.membership_input("blacklist", "phone", phone(1)), frozenset(), NOW)
    for bad in (
        OwnInput("13800138000", frozenset(), NOW),  # type: ignore[arg-type]
        OwnInput(b"x", frozenset(), -1),
        OwnInput(b"x", {"fraud"}, NOW),  # type: ignore[arg-type]
        OwnInput(b"", frozenset(), NOW),
    ):
        with pytest.raises(PublishError, match="row 1"):
            publish(keys, [good, bad], fresh.holders.evaluate)
    assert fresh.holders.calls == 0


def test_check_inclusion_catches_a_dishonest_builder(fresh: Scenario) -> None:
    keys = fresh.holders.keys
    rows = [
        OwnInput(inputs.membership_input("blacklist", "phone", phone(k)), frozenset({"fraud"}), NOW)
        for k in range(5)
    ]
    mine = publish(keys, rows, fresh.holders.evaluate)
    theirs = publish(keys, rows[2:], fresh.holders.evaluate)
    honest = build_union(EPOCH, [mine, theirs])
    assert check_inclusion(honest, mine, epoch=EPOCH) == honest.digest
    dropped = build_union(EPOCH, [Contribution(mine.entries[1:]), theirs])
    with pytest.raises(InclusionError, match="missing"):
        check_inclusion(dropped, mine, epoch=EPOCH)
    first = mine.entries[0]
    relabelled = Entry(first.prf, frozenset({"cleared"}), first.event_time)
    altered = build_union(EPOCH, [Contribution([relabelled, *mine.entries[1:]]), theirs])
    with pytest.raises(InclusionError, match="differ"):
        check_inclusion(altered, mine, epoch=EPOCH)
    older = Entry(first.prf, first.labels, first.event_time - 1)
    backdated = build_union(EPOCH, [Contribution([older, *mine.entries[1:]]), theirs])
    with pytest.raises(InclusionError, match="differ"):
        check_inclusion(backdated, mine, epoch=EPOCH)
    other_epoch = build_union(EPOCH + 1, [mine, theirs])
    with pytest.raises(InclusionError):
        check_inclusion(other_epoch, mine, epoch=EPOCH)
