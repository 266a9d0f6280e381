"""What key holders and queriers can learn: the privacy claims of the lookup roles, tested.

* key holders (providers) record nothing that contains a queried or published
  identifier, nor an unkeyed hash of one, and see no querier identity;
* the querier's view is the same whichever provider listed a hit.
"""

from __future__ import annotations

import hashlib
import inspect
import random
from collections import Counter

from node.algorithms.identifiers import identifier_tag, normalise
from node.crypto import oprf
from node.lookup import inputs
from node.lookup.epoch import EpochDescriptor, run_dkg
from node.lookup.keyholder import KeyHolder
from node.lookup.publisher import OwnInput, check_inclusion, publish
from node.lookup.querier import Querier, UnionDownload
from node.lookup.union import Union, build_union, parse_bucket
from tests.node.lookup.test_lookup_roles import (
    EPOCH,
    NOW,
    UNION_NAME,
    Holders,
    Row,
    make_plan,
    phone,
    phone_variant,
    provider_inputs,
)


def forbidden(list_name: str, kind: str, raw: str) -> list[bytes]:
    """Everything that would identify ``raw`` to someone without the key."""
    normalised = normalise(kind, raw)
    x = inputs.membership_input(list_name, kind, raw)
    plain = [
        raw.encode(),
        normalised.encode(),
        identifier_tag(kind) + normalised.encode(),
        x,
        oprf.hash_to_group(x),  # the unkeyed group hash that blinding hides
    ]
    hashed = [h(v).digest() for v in plain for h in (hashlib.sha256, hashlib.sha512)]
    return plain + hashed


def seen_bytes(holders: Holders) -> bytes:
    for _index, epoch, batch in holders.seen:
        assert epoch == holders.keys.epoch
        assert all(isinstance(e, bytes) and len(e) == oprf.ELEMENT_BYTES for e in batch)
    return b"".join(e for _, _, batch in holders.seen for e in batch)


def test_holders_record_no_identifier_nor_unkeyed_hash() -> None:
    plan = make_plan(3, seed=31, per_provider=20)
    keys, shares = run_dkg(2, 3, epoch=EPOCH, list_name=UNION_NAME)
    holders = Holders.of(keys, shares)
    contributions = [publish(keys, provider_inputs(plan, p), holders.evaluate) for p in range(3)]
    # Publishing: the holders saw the other providers' blinded entries only.
    published = seen_bytes(holders)
    assert published
    for rows in plan.rows:
        for row in rows:
            for value in forbidden(row.list_name, row.kind, row.raw):
                assert value not in published
    union = build_union(EPOCH, contributions)
    anchor = EpochDescriptor(EPOCH, keys.digest, union.digest)
    holders.seen.clear()
    querier = Querier(
        keys, UnionDownload.of(union), lambda i: union.buckets[i], holders.evaluate, anchor=anchor
    )
    rng = random.Random(3)
    asked = [("phone", phone_variant(c, rng)) for c in plan.phones[:15]]
    querier.batch(asked)
    for _kind, raw in asked[:3]:
        querier.multihead("phone", raw, now=NOW)
    querier.verify("national-id", plan.ids[0], {"phone": phone(5), "name": "Li Si"})
    recorded = seen_bytes(holders)
    assert recorded
    for kind, raw in asked:
        for list_name in ("blacklist", "lending"):
            for value in forbidden(list_name, kind, raw):
                assert value not in recorded
    composite = inputs.element_input("national-id", plan.ids[0], "phone", phone(5))
    for value in (composite, oprf.hash_to_group(composite), hashlib.sha512(composite).digest()):
        assert value not in recorded


def test_holders_see_no_querier_identity() -> None:
    """A holder's whole interface is the epoch and the blinded elements."""
    assert list(inspect.signature(KeyHolder.evaluate).parameters) == [
        "self",
        "epoch",
        "blinded_elements",
    ]


def _union_for(assignment: list[list[Row]], keys_holders: Holders) -> tuple[Union, list[bytes]]:
    keys = keys_holders.keys
    contributions = [
        publish(
            keys,
            [
                OwnInput(
                    inputs.membership_input(r.list_name, r.kind, r.raw), r.labels, r.event_time
                )
                for r in rows
            ],
            keys_holders.evaluate,
        )
        for rows in assignment
    ]
    union = build_union(EPOCH, contributions)
    return union, [check_inclusion(union, c, epoch=EPOCH) for c in contributions]


def test_querier_view_is_the_same_whichever_provider_listed_the_hit() -> None:
    keys, shares = run_dkg(2, 3, epoch=EPOCH, list_name=UNION_NAME)
    holders = Holders.of(keys, shares)
    rng = random.Random(4)
    base = [
        [
            Row("blacklist", "phone", phone(100 * p + k), frozenset({"fraud"}), NOW - k * 86_400)
            for k in range(6)
        ]
        for p in range(3)
    ]
    shared = Row("blacklist", "phone", phone_variant(phone(99), rng), frozenset({"mule"}), NOW)
    also = Row("blacklist", "phone", phone(100), frozenset({"overdue-90"}), NOW - 5)
    # The same two listings held by providers (0, 2) in one world and (1, 2) in the other.
    world_a = [base[0] + [shared], base[1], base[2] + [also]]
    world_b = [base[0], base[1] + [shared], base[2] + [also]]
    union_a, _ = _union_for(world_a, holders)
    union_b, _ = _union_for(world_b, holders)
    assert union_a.table_bytes == union_b.table_bytes
    assert union_a.bucket_count == union_b.bucket_count
    for bucket_a, bucket_b in zip(union_a.buckets, union_b.buckets, strict=True):
        sizes_a = Counter(len(r) for r in parse_bucket(bucket_a)[1])
        sizes_b = Counter(len(r) for r in parse_bucket(bucket_b)[1])
        assert sizes_a == sizes_b
    answers = []
    for union in (union_a, union_b):
        anchor = EpochDescriptor(EPOCH, keys.digest, union.digest)
        querier = Querier(
            keys,
            UnionDownload.of(union),
            union.buckets.__getitem__,
            holders.evaluate,
            anchor=anchor,
        )
        answers.append(querier.batch([("phone", phone(99)), ("phone", phone(100))]))
    assert answers[0] == answers[1]
    assert answers[0][0].listed and answers[0][0].multiplicity == 1
    assert answers[0][1].multiplicity == 2
