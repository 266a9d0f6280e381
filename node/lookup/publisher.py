"""A provider's side of an anonymous-lookup epoch: its entries' PRF values, and its sign-off.

Why this module exists: a union entry must be ``F(k, x)`` under the epoch's threshold
key, which no provider holds. So a provider evaluates its own listed inputs exactly as a
querier does (``epoch.evaluate_obliviously``): it blinds them, ``t`` key holders — the
other providers — answer ``k_i * B`` with proofs, and the provider verifies every proof
and finalizes. The holders see only uniformly random blinded elements, never what the
provider lists; the provider learns ``F(k, x)`` only for its own inputs.

**Who builds the union.** The relay node, which is not a key holder and not a querier:
it receives every provider's :class:`~node.lookup.union.Contribution` (PRF values,
labels, event times; no identifiers, and ``Contribution`` carries no provider name) and
runs ``union.build_union``. It does learn which provider sent which PRF value, which is
why it must hold no key share and make no queries (with ``F(k, x)`` for a guessed ``x``
it could tell who listed ``x``). It cannot cheat unseen: before the union's digest is
anchored, every provider runs :func:`check_inclusion` on the published union and signs
off on the digest only if all of its own listings are present with their labels and
event times; a builder that drops or alters a provider's entries is caught by that
provider. Together with the epoch keys digest the union digest is then anchored
(``epoch.EpochDescriptor``), and queriers check what they download against it.

**Providers offline.** Evaluation needs any ``t`` of the ``n`` holders, so a provider
can publish (and anyone can query) while up to ``n - t`` providers are offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from node.lookup.epoch import (
    MAX_BATCH,
    EpochError,
    EpochKeys,
    Evaluate,
    OnDropped,
    evaluate_obliviously,
)
from node.lookup.union import (
    Contribution,
    Entry,
    Union,
    UnionBuildError,
    UnionError,
    bucket_of,
    check_listing,
    lookup,
    open_labels,
    own_listings,
)

__all__ = [
    "DEFAULT_CHUNK",
    "InclusionError",
    "ListedInput",
    "OwnInput",
    "PublishError",
    "check_inclusion",
    "publish",
]

DEFAULT_CHUNK = 10_000  # inputs per evaluation round (at most epoch.MAX_BATCH)
_MAX_INPUT = 0xFFFF  # RFC 9497 length prefix


class ListedInput(Protocol):
    """One listed row: the OPRF input (``inputs.membership_input``/``element_input``),
    its labels and event time. ``listing.ListedEntry`` has this shape."""

    @property
    def input(self) -> bytes: ...

    @property
    def labels(self) -> frozenset[str]: ...

    @property
    def event_time(self) -> int: ...


@dataclass(frozen=True, slots=True)
class OwnInput:
    """The plain implementation of :class:`ListedInput`."""

    input: bytes
    labels: frozenset[str] = frozenset()
    event_time: int = 0


class PublishError(EpochError):
    """A listed row that cannot be published; nothing was sent for evaluation."""


class InclusionError(EpochError):
    """The published union lacks or alters this provider's listing: do not sign it off."""


def _check_rows(items: Sequence[ListedInput]) -> None:
    for row, item in enumerate(items):
        x = getattr(item, "input", None)
        if not isinstance(x, bytes) or not 0 < len(x) <= _MAX_INPUT:
            raise PublishError(
                f"row {row}: input must be 1..{_MAX_INPUT} bytes from node.lookup.inputs"
            )
        try:
            check_listing(item.labels, item.event_time)
        except UnionBuildError as exc:
            raise PublishError(f"row {row}: {exc}") from None


def publish(
    epoch_keys: EpochKeys,
    items: Iterable[ListedInput],
    evaluate: Evaluate,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    on_dropped: OnDropped | None = None,
) -> Contribution:
    """This provider's contribution to ``epoch_keys.epoch``'s union.

    Every row is checked before anything is sent (:class:`PublishError` names the row).
    Each distinct input is evaluated once, ``chunk_size`` per round (one ``evaluate``
    call each); a holder whose proof fails is dropped and named through ``on_dropped``,
    and fewer than ``t`` verified holders raise ``TooFewHoldersError``. Repeated rows
    stay separate entries: ``build_union`` merges them into one listing.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise PublishError(f"chunk_size must be an int, got {chunk_size!r}")
    if not 1 <= chunk_size <= MAX_BATCH:
        raise PublishError(f"chunk_size must be in 1..{MAX_BATCH}, got {chunk_size}")
    rows = list(items)
    _check_rows(rows)
    distinct = list(dict.fromkeys(item.input for item in rows))
    prfs: dict[bytes, bytes] = {}
    for start in range(0, len(distinct), chunk_size):
        chunk = distinct[start : start + chunk_size]
        outputs = evaluate_obliviously(epoch_keys, chunk, evaluate, on_dropped)
        prfs.update(zip(chunk, outputs, strict=True))
    return Contribution([Entry(prfs[item.input], item.labels, item.event_time) for item in rows])


def check_inclusion(
    union: Union, own_entries: Contribution | Sequence[Entry], *, epoch: int
) -> bytes:
    """Check that ``union`` carries every own listing unaltered; return the digest to sign.

    ``epoch`` is the epoch this provider published for: a union built for another epoch
    would carry the same entries under other tags, and must not be signed for this one.

    For each of this provider's listings (merged as ``build_union`` merges them): the
    table has its tag with multiplicity >= 1, its bucket holds a record that opens under
    its PRF, that record lists exactly the multiplicity's number of listings, and one of
    them equals this provider's labels and event time. Raises :class:`InclusionError`
    naming the first failure (by position and kind, never by PRF value).
    """
    if union.epoch != epoch:
        raise InclusionError(
            f"the union is for epoch {union.epoch}, these entries were published for {epoch}"
        )
    contribution = (
        own_entries if isinstance(own_entries, Contribution) else Contribution(own_entries)
    )
    try:
        mine = own_listings(contribution)
    except UnionError as exc:
        raise InclusionError(f"own entries are malformed: {exc}") from None
    for position, (prf, listing) in enumerate(mine.items()):
        hit = lookup(union.table, prf, union.epoch)
        if hit is None or hit.multiplicity < 1:
            raise InclusionError(
                f"own listing {position} is missing from the union's table; "
                "refuse to sign off this digest"
            )
        bucket = union.buckets[bucket_of(prf, union.epoch, union.bucket_count)]
        try:
            listings = open_labels(bucket, prf, union.epoch)
        except UnionError as exc:
            raise InclusionError(
                f"own listing {position}: its bucket is malformed: {exc}"
            ) from None
        if not listings:
            raise InclusionError(f"own listing {position}: no record in its bucket opens")
        if len(listings) != hit.multiplicity:
            raise InclusionError(
                f"own listing {position}: table multiplicity {hit.multiplicity} but "
                f"{len(listings)} listings in its record"
            )
        if listing not in listings:
            raise InclusionError(
                f"own listing {position}: labels or event time differ from what was contributed"
            )
    return union.digest
