"""Anchoring a lookup epoch on chain, and finding the one a querier may use.

Why this module exists: a querier downloads the union from the node that built it, so
nothing it receives can be trusted unless the chain says which union is current. The
builder (the relay node, which sees contributions but holds no key share) could drop,
add or alter entries; so the chain records two things per list, both in ``AnchorLog``
(no new contract is needed, and AnchorLog already forbids rewriting the past):

* the **builder's epoch log** ``name_id("lookup-epochs", list)``: one checkpoint per
  epoch, ``treeSize = epoch`` and ``rootHash =`` the epoch descriptor's digest (the
  union digest bound to the epoch's public key material); strictly increasing, so an
  epoch, once anchored, cannot be replaced by another union;
* each provider's **acceptance log** ``name_id("lookup-accept", list)``: the same
  ``(epoch, digest)``, written by a provider only after it has checked that its own
  entries are in the union (``publisher.check_inclusion``).

A querier (and a key holder deciding which epoch it answers for) calls
:func:`current_epoch`: the builder's latest epoch, and only if at least ``quorum`` of the
named providers accepted exactly that digest. A provider that finds its entries missing
simply does not accept, and the epoch never becomes usable. Older epochs are never
current again, which is how "old epochs stop answering" is decided: from the chain, not
from anyone's word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.clients.anchor_log import AnchorLogClient
from ledger.ids import name_id

__all__ = [
    "AnchoredEpoch",
    "EpochConflictError",
    "EpochNotAnchoredError",
    "StaleEpochAnchorError",
    "UnionNotAcceptedError",
    "accept_epoch",
    "acceptance_log_name",
    "anchor_epoch",
    "current_epoch",
    "epoch_log_name",
]

_ZERO = bytes(32)


class EpochNotAnchoredError(LookupError):
    """No epoch of this list is anchored by its builder yet."""


class EpochConflictError(ValueError):
    """This epoch is already anchored with a different digest: an epoch names one union."""


class StaleEpochAnchorError(ValueError):
    """A later epoch is already anchored; an older one can never become current again."""


class UnionNotAcceptedError(LookupError):
    """Too few providers accepted the builder's current union (one may have found its
    entries missing): the epoch must not be used."""


@dataclass(frozen=True)
class AnchoredEpoch:
    list_name: str
    epoch: int
    descriptor_digest: bytes
    accepted_by: tuple[str, ...]  # provider node addresses, in the order asked


def epoch_log_name(list_name: str) -> bytes:
    return name_id("lookup-epochs", list_name)


def acceptance_log_name(list_name: str) -> bytes:
    return name_id("lookup-accept", list_name)


def _check(epoch: int, digest: bytes) -> None:
    if not 0 < epoch < 2**64:
        raise ValueError(f"epoch must be 1..2^64-1, got {epoch}")
    if len(digest) != 32 or digest == _ZERO:
        raise ValueError("descriptor digest must be 32 non-zero bytes")


def _write(anchors: AnchorLogClient, name: bytes, epoch: int, digest: bytes) -> bool:
    """Checkpoint ``(epoch, digest)`` in the sender's log ``name``; False when already
    there (a retry), a named error when it contradicts what is there."""
    _check(epoch, digest)
    latest, root = anchors.latest(anchors.own_log_id(name))
    if latest == epoch:
        if root != digest:
            raise EpochConflictError(
                f"epoch {epoch} is already anchored as 0x{root.hex()}, not 0x{digest.hex()}"
            )
        return False
    if latest > epoch:
        raise StaleEpochAnchorError(
            f"epoch {latest} is already anchored; epoch {epoch} cannot follow it"
        )
    anchors.append(name, epoch, digest)
    return True


def anchor_epoch(anchors: AnchorLogClient, list_name: str, epoch: int, digest: bytes) -> bool:
    """The builder anchors ``epoch`` of ``list_name`` (idempotent: False on a retry)."""
    return _write(anchors, epoch_log_name(list_name), epoch, digest)


def accept_epoch(anchors: AnchorLogClient, list_name: str, epoch: int, digest: bytes) -> bool:
    """A provider accepts ``epoch``'s union, after checking its own entries are in it."""
    return _write(anchors, acceptance_log_name(list_name), epoch, digest)


def current_epoch(
    anchors: AnchorLogClient,
    list_name: str,
    builder: str,
    providers: Sequence[str],
    quorum: int,
) -> AnchoredEpoch:
    """The epoch of ``list_name`` a querier may use now: the builder's latest, accepted
    with the same digest by at least ``quorum`` of ``providers``."""
    if not 0 < quorum <= len(providers):
        raise ValueError(f"quorum must be 1..{len(providers)}, got {quorum}")
    epoch, digest = anchors.latest(anchors.log_id_for(builder, epoch_log_name(list_name)))
    if epoch == 0:
        raise EpochNotAnchoredError(
            f"no epoch of list {list_name!r} is anchored by builder {builder}; "
            "the union must be built and anchored first (provnet lookup publish)"
        )
    accepted = tuple(
        provider
        for provider in providers
        if anchors.latest(anchors.log_id_for(provider, acceptance_log_name(list_name)))
        == (epoch, digest)
    )
    if len(accepted) < quorum:
        raise UnionNotAcceptedError(
            f"epoch {epoch} of list {list_name!r} is accepted by {len(accepted)} of "
            f"{len(providers)} providers, fewer than the quorum of {quorum}"
        )
    return AnchoredEpoch(list_name, epoch, digest, accepted)
