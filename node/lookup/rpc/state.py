"""What a node's lookup roles hold between calls: key shares, contributions, unions, tickets.

Why this module exists: the gRPC servicer (``service.py``) should only authenticate,
translate and map errors; the rules of each role — a dealing is verified before it is
kept, a contribution must be computed under the same keys as the others', a ticket is
collected only by the organisation that submitted it — live here, behind two small
interfaces (:class:`HolderRole`, :class:`RelayRole`). The classes below keep everything
in memory, which is what a test or a demo needs; a node that must survive a restart
backs the same interfaces with a store.

Nothing here trusts a caller's word for who it is: the servicer passes the dealer's
holder index, the provider's index and the querier's organisation as it derived them
from the authenticated certificate and the chain.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ledger.canonical import canonical_json
from node.crypto import threshold_oprf
from node.crypto.threshold_oprf import InvalidDealingError, KeyShare, ShareEvaluation
from node.lookup.epoch import (
    DkgError,
    EpochDescriptor,
    EpochKeys,
    EpochKeysMismatch,
    StaleEpochError,
)
from node.lookup.keyholder import BatchHook, KeyHolder
from node.lookup.relay import Relay, Ticket, TicketAnswer
from node.lookup.rpc.roster import ListRoster
from node.lookup.union import Contribution, Entry, Union, UnionError, build_union, own_listings

__all__ = [
    "Admit",
    "ContributionConflict",
    "DealingConflict",
    "GrantRefused",
    "HolderRole",
    "HolderState",
    "InvalidContribution",
    "JustificationRefused",
    "LookupStateError",
    "NoEpochError",
    "NotInRoster",
    "NotYourTicket",
    "Published",
    "RelayRole",
    "RelayState",
    "UnknownList",
    "UnknownTicket",
    "contribution_digest",
]

DEFAULT_MAX_ANSWERS = 100_000


class LookupStateError(ValueError):
    """Base of this module's errors."""


class UnknownList(LookupStateError):
    """A list this node has no roster for."""

    def __init__(self, list_name: str) -> None:
        super().__init__(f"list_name: this node serves no lookup list {list_name!r}")


class NotInRoster(LookupStateError):
    """This node does not play the role the call needs for the list."""


class NoEpochError(LookupStateError):
    """The list has no key share (holder) or no built union (relay) yet."""


class DealingConflict(LookupStateError):
    """A dealer sent a second, different dealing for the same (list, epoch)."""


class ContributionConflict(LookupStateError):
    """A provider sent a second, different contribution for the same (list, epoch)."""


class JustificationRefused(LookupStateError):
    """A dealer will not reveal a share: it dealt none for that (list, epoch), the holder
    took its share, or answering would hand the relay ``t`` shares of one polynomial."""


class InvalidContribution(LookupStateError):
    """Entries ``build_union`` would refuse; nothing of the contribution was kept."""


class GrantRefused(LookupStateError):
    """A submission under a grant that is unknown, not the caller's, not for the lookup
    service, revoked, expired or used up on chain; nothing was charged or held."""


class UnknownTicket(LookupStateError):
    """A ticket id this relay never issued (or whose answer expired)."""


class NotYourTicket(LookupStateError):
    """A ticket submitted by another organisation."""


# ------------------------------------------------------------------ key holder


@dataclass(frozen=True)
class _Dealing:
    commitments: tuple[bytes, ...]
    share: bytes = field(repr=False)


class HolderRole(Protocol):
    """What the servicer asks of a key holder."""

    def receive_dealing(
        self, list_name: str, epoch: int, dealer: int, commitments: Sequence[bytes], share: bytes
    ) -> bool: ...

    def evaluate(self, list_name: str, epoch: int, blinded: Sequence[bytes]) -> ShareEvaluation: ...


class HolderState:
    """A provider node's key shares, per list: dealings received, then its current holder.

    ``on_batch(list_name)`` may give a hook per list (e.g. appending to the provider's
    query log) that every evaluated batch is reported to.
    """

    def __init__(
        self,
        node: str,
        rosters: Mapping[str, ListRoster],
        on_batch: Callable[[str], BatchHook | None] | None = None,
    ) -> None:
        self.node = node
        self.rosters = dict(rosters)
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._dealings: dict[tuple[str, int], dict[int, _Dealing]] = {}
        self._holders: dict[str, KeyHolder] = {}
        self._shares: dict[str, tuple[KeyShare, EpochKeys]] = {}

    def _own_index(self, list_name: str) -> tuple[ListRoster, int]:
        roster = self.rosters.get(list_name)
        if roster is None:
            raise UnknownList(list_name)
        index = roster.holder_index(self.node)
        if index is None:
            raise NotInRoster(f"this node is not a key holder (provider) of list {list_name!r}")
        return roster, index

    def _check_new_epoch(self, list_name: str, epoch: int) -> None:
        current = self._holders.get(list_name)
        if current is not None and epoch <= current.epoch:
            raise StaleEpochError(epoch, current.epoch)

    def receive_dealing(
        self, list_name: str, epoch: int, dealer: int, commitments: Sequence[bytes], share: bytes
    ) -> bool:
        """Verify dealer ``dealer``'s share to this holder and keep it; True for a retry.

        Raises ``InvalidDealingError`` (the complaint: the share fails the dealer's
        Feldman commitments, or the degree is not ``t``), :class:`DealingConflict`,
        ``StaleEpochError`` for an epoch not after this holder's current one.
        """
        roster, own = self._own_index(list_name)
        with self._lock:
            self._check_new_epoch(list_name, epoch)  # cheap, before the verification
        dealing = _Dealing(tuple(commitments), share)
        if len(dealing.commitments) != roster.t:
            raise InvalidDealingError(
                dealer, f"committed to {len(dealing.commitments)} coefficients, t={roster.t}"
            )
        threshold_oprf.verify_share(dealing.commitments, own, share, dealer=dealer)
        with self._lock:
            self._check_new_epoch(list_name, epoch)
            received = self._dealings.setdefault((list_name, epoch), {})
            old = received.get(dealer)
            if old is not None:
                if old != dealing:
                    raise DealingConflict(
                        f"dealer {dealer} already dealt a different share for list "
                        f"{list_name!r} epoch {epoch}; a dealer deals once per epoch"
                    )
                return True
            received[dealer] = dealing
            return False

    def dealers(self, list_name: str, epoch: int) -> list[int]:
        """The dealers whose verified dealings this holder has for (list, epoch)."""
        with self._lock:
            return sorted(self._dealings.get((list_name, epoch), {}))

    def complete_dkg(self, list_name: str, epoch: int, exclude: Collection[int] = ()) -> EpochKeys:
        """Combine the dealings of every dealer but ``exclude`` into this holder's share.

        Every holder must combine over the same qualified set (all dealers minus the
        ones the complaint round disqualified), so a qualified dealer whose dealing is
        missing here stops with ``DkgError`` naming it rather than combining without
        it. The dealt shares are forgotten once combined.
        """
        roster, own = self._own_index(list_name)
        qualified = sorted(set(range(1, roster.n + 1)) - set(exclude))
        if len(qualified) < roster.t:
            raise DkgError(f"{len(qualified)} qualified dealers remain, need at least t={roster.t}")
        with self._lock:
            self._check_new_epoch(list_name, epoch)
            received = self._dealings.get((list_name, epoch), {})
            missing = [d for d in qualified if d not in received]
            if missing:
                raise DkgError(
                    f"no verified dealing from dealers {missing} for list {list_name!r} epoch "
                    f"{epoch}; wait for them or exclude them on every holder"
                )
            chosen = {d: received[d] for d in qualified}
            share = threshold_oprf.combine_dealings(
                own, {d: (x.commitments, x.share) for d, x in chosen.items()}
            )
            keys = EpochKeys.from_commitments(
                epoch, list_name, roster.t, roster.n, {d: x.commitments for d, x in chosen.items()}
            )
            hook = None if self._on_batch is None else self._on_batch(list_name)
            self._holders[list_name] = KeyHolder(share, keys, hook)
            self._shares[list_name] = (share, keys)
            for key in [k for k in self._dealings if k[0] == list_name and k[1] <= epoch]:
                del self._dealings[key]
            return keys

    def export(self, list_name: str) -> tuple[KeyShare, EpochKeys] | None:
        """The current share and keys of ``list_name`` (for a node to persist them)."""
        with self._lock:
            return self._shares.get(list_name)

    def restore(self, list_name: str, share: KeyShare, keys: EpochKeys) -> None:
        """Take back a share persisted before a restart (``StaleEpochError`` if this
        holder already has a later epoch; ``EpochKeysMismatch`` if share and keys differ)."""
        roster, own = self._own_index(list_name)
        if (keys.list_name, keys.t, keys.n, share.index) != (list_name, roster.t, roster.n, own):
            raise EpochKeysMismatch(
                f"the persisted share of list {list_name!r} is for another roster "
                f"(t={keys.t}, n={keys.n}, holder {share.index}); rerun the epoch"
            )
        hook = None if self._on_batch is None else self._on_batch(list_name)
        holder = KeyHolder(share, keys, hook)
        with self._lock:
            self._check_new_epoch(list_name, keys.epoch)
            self._holders[list_name] = holder
            self._shares[list_name] = (share, keys)

    def key_holder(self, list_name: str) -> KeyHolder | None:
        with self._lock:
            return self._holders.get(list_name)

    def evaluate(self, list_name: str, epoch: int, blinded: Sequence[bytes]) -> ShareEvaluation:
        """This holder's answer for ``blinded``; ``StaleEpochError`` for another epoch."""
        self._own_index(list_name)
        holder = self.key_holder(list_name)
        if holder is None:
            raise NoEpochError(f"no key share for list {list_name!r} yet: run the DKG first")
        return holder.evaluate(epoch, blinded)


# ------------------------------------------------------------------ relay / builder


@dataclass(frozen=True)
class Published:
    """A built epoch: the keys it was computed under, its anchor record and the union."""

    keys: EpochKeys
    descriptor: EpochDescriptor
    union: Union


@dataclass(frozen=True)
class _Contribution:
    keys: EpochKeys
    digest: bytes
    contribution: Contribution


def contribution_digest(entries: Sequence[Entry]) -> bytes:
    """A digest of entries in order: what tells a retry from a different contribution."""
    h = hashlib.sha256()
    for entry in entries:
        h.update(entry.prf)
        h.update(canonical_json([sorted(entry.labels), entry.event_time]))
        h.update(b"\n")
    return h.digest()


class RelayRole(Protocol):
    """What the servicer asks of a relay (builder) node."""

    def add_contribution(
        self, list_name: str, epoch: int, provider: int, keys: EpochKeys, entries: Sequence[Entry]
    ) -> bool: ...

    def published(self, list_name: str) -> Published | None: ...

    def submit(
        self,
        list_name: str,
        epoch: int,
        org: str,
        purpose: str,
        grant_id: bytes,
        blinded: Sequence[bytes],
        now: float,
    ) -> Ticket: ...

    def collect(self, ticket_id: bytes, org: str, wait: float) -> TicketAnswer | None: ...


Admit = Callable[[str, str, str, bytes, int], None]
"""``(list_name, org, purpose, grant_id, count)`` -> None, or raise to refuse a submission."""


@dataclass
class _TicketInfo:
    org: str
    answer: TicketAnswer | None = None


class RelayState:
    """A relay node's lists: contributions per epoch, the built epoch, its `Relay`, tickets.

    ``make_relay(list_name, epoch)`` opens the scheduler of a newly built epoch (with
    the node's meter and query log). ``admit(list_name, org, purpose, grant_id, count)``,
    if given, runs before every submission is handed to the scheduler: the node's check
    of the grant on chain (and its crediting of the meter); it raises to refuse.
    Tickets are remembered, with their answers once delivered, up to ``max_answers``
    (oldest forgotten first).
    """

    def __init__(
        self,
        node: str,
        rosters: Mapping[str, ListRoster],
        make_relay: Callable[[str, int], Relay],
        *,
        max_answers: int = DEFAULT_MAX_ANSWERS,
        admit: Admit | None = None,
    ) -> None:
        self.node = node
        self.rosters = dict(rosters)
        self._make_relay = make_relay
        self._admit = admit
        self._max_answers = max_answers
        self._cond = threading.Condition()
        self._contributions: dict[tuple[str, int], dict[int, _Contribution]] = {}
        self._published: dict[str, Published] = {}
        self._relays: dict[str, Relay] = {}
        self._tickets: OrderedDict[bytes, _TicketInfo] = OrderedDict()
        self._submitted = 0

    def _roster(self, list_name: str) -> ListRoster:
        roster = self.rosters.get(list_name)
        if roster is None:
            raise UnknownList(list_name)
        if roster.relay != self.node:
            raise NotInRoster(f"this node is not the relay of list {list_name!r}")
        return roster

    def _check_epoch_open(self, list_name: str, epoch: int) -> None:
        current = self._published.get(list_name)
        if current is not None and epoch <= current.descriptor.epoch:
            raise StaleEpochError(epoch, current.descriptor.epoch)

    # --- contributions and building -------------------------------------------------

    def add_contribution(
        self, list_name: str, epoch: int, provider: int, keys: EpochKeys, entries: Sequence[Entry]
    ) -> bool:
        """Keep provider ``provider``'s entries for ``epoch``; True for an identical retry.

        The keys must be the epoch's (same list, t and n as the roster) and the same as
        every other provider's: a provider whose DKG ended with other keys computed
        PRF values no querier would ever match.
        """
        roster = self._roster(list_name)
        if (keys.epoch, keys.list_name, keys.t, keys.n) != (epoch, list_name, roster.t, roster.n):
            raise EpochKeysMismatch(
                f"the contribution's keys are for list {keys.list_name!r} epoch {keys.epoch} "
                f"with t={keys.t}, n={keys.n}; the roster and the call say {list_name!r} "
                f"epoch {epoch}, t={roster.t}, n={roster.n}"
            )
        contribution = Contribution(tuple(entries))
        try:
            own_listings(contribution)  # every check build_union makes on entries
        except UnionError as exc:
            raise InvalidContribution(f"entries: {exc}") from None
        item = _Contribution(keys, contribution_digest(contribution.entries), contribution)
        with self._cond:
            self._check_epoch_open(list_name, epoch)
            received = self._contributions.setdefault((list_name, epoch), {})
            for other, given in received.items():
                if other != provider and given.keys.digest != keys.digest:
                    raise EpochKeysMismatch(
                        f"the contribution's epoch keys differ from those provider {other} "
                        "contributed under: the providers' DKG results disagree; rerun it"
                    )
            old = received.get(provider)
            if old is not None:
                if old.digest != item.digest or old.keys.digest != keys.digest:
                    raise ContributionConflict(
                        f"provider {provider} already contributed different entries to list "
                        f"{list_name!r} epoch {epoch}; a contribution is made once per epoch"
                    )
                return True
            received[provider] = item
            return False

    def contributors(self, list_name: str, epoch: int) -> list[int]:
        with self._cond:
            return sorted(self._contributions.get((list_name, epoch), {}))

    def build(
        self,
        list_name: str,
        epoch: int,
        *,
        bucket_count: int | None = None,
        rng: random.Random | None = None,
    ) -> Published:
        """Build ``epoch``'s union from the contributions received and make it current.

        The epoch's relay scheduler is opened here unless :meth:`open_epoch` did; the
        previous epoch's stops taking submissions (its pending answers can still be
        collected).
        """
        self._roster(list_name)
        with self._cond:
            self._check_epoch_open(list_name, epoch)
            received = dict(self._contributions.get((list_name, epoch), {}))
        if not received:
            raise NoEpochError(f"no contribution to list {list_name!r} epoch {epoch} yet")
        keys = next(iter(received.values())).keys
        union = build_union(
            epoch, [received[p].contribution for p in sorted(received)], bucket_count, rng
        )
        published = Published(keys, EpochDescriptor(epoch, keys.digest, union.digest), union)
        with self._cond:
            self._check_epoch_open(list_name, epoch)
            relay = self._relays.get(list_name)
            if relay is None or relay.epoch < epoch:
                self._relays[list_name] = self._make_relay(list_name, epoch)
            self._published[list_name] = published
            for key in [k for k in self._contributions if k[0] == list_name and k[1] <= epoch]:
                del self._contributions[key]
            self._cond.notify_all()
        return published

    def open_epoch(self, list_name: str, epoch: int) -> None:
        """Start relaying evaluations for key epoch ``epoch`` (after the providers' DKG).

        Providers publish through the relay like queriers (the holders cannot tell the
        two apart), before the epoch's union exists; so the scheduler of a key epoch is
        opened here, ahead of :meth:`build`. Submissions for the previous epoch are
        refused from now on, as the holders (already re-keyed) would refuse them.
        """
        self._roster(list_name)
        with self._cond:
            self._check_epoch_open(list_name, epoch)
            relay = self._relays.get(list_name)
            if relay is not None and epoch <= relay.epoch:
                if epoch == relay.epoch:
                    return
                raise StaleEpochError(epoch, relay.epoch)
            self._relays[list_name] = self._make_relay(list_name, epoch)
            self._cond.notify_all()

    def open_epoch_number(self, list_name: str) -> int:
        """The key epoch submissions are taken for now (0: none opened yet)."""
        self._roster(list_name)
        with self._cond:
            relay = self._relays.get(list_name)
            return 0 if relay is None else relay.epoch

    def restore(self, list_name: str, published: Published) -> None:
        """Serve a built epoch persisted before a restart, as :meth:`build` left it."""
        self._roster(list_name)
        epoch = published.descriptor.epoch
        with self._cond:
            self._check_epoch_open(list_name, epoch)
            relay = self._relays.get(list_name)
            if relay is None or relay.epoch < epoch:
                self._relays[list_name] = self._make_relay(list_name, epoch)
            self._published[list_name] = published
            self._cond.notify_all()

    def published(self, list_name: str) -> Published | None:
        self._roster(list_name)
        with self._cond:
            return self._published.get(list_name)

    # --- tickets -------------------------------------------------------------------

    def relays(self) -> list[tuple[str, Relay]]:
        """The current epoch's scheduler of every list (for the forwarder)."""
        with self._cond:
            return list(self._relays.items())

    def submit(
        self,
        list_name: str,
        epoch: int,
        org: str,
        purpose: str,
        grant_id: bytes,
        blinded: Sequence[bytes],
        now: float,
    ) -> Ticket:
        """Hand ``org``'s elements to the open key epoch's relay (``StaleEpochError`` for
        another epoch); the relay's own errors (``InvalidSubmission``,
        ``QuotaExhausted``, ...) pass through with nothing charged or held."""
        self._roster(list_name)
        with self._cond:
            relay = self._relays.get(list_name)
        if relay is None:
            raise NoEpochError(f"list {list_name!r} has no open key epoch yet")
        if epoch != relay.epoch:
            raise StaleEpochError(epoch, relay.epoch)
        if self._admit is not None:
            self._admit(list_name, org, purpose, grant_id, len(blinded))
        ticket = relay.submit(org, purpose, grant_id, blinded, now)
        with self._cond:
            self._tickets[ticket.ticket_id] = _TicketInfo(org)
            self._forget_old()
            self._submitted += 1
            self._cond.notify_all()
        return ticket

    def put_answers(self, answers: Sequence[TicketAnswer]) -> None:
        """File delivered answers for collection (from the forwarder)."""
        with self._cond:
            for answer in answers:
                info = self._tickets.get(answer.ticket_id)
                if info is not None:
                    info.answer = answer
            self._cond.notify_all()

    def collect(self, ticket_id: bytes, org: str, wait: float) -> TicketAnswer | None:
        """The answer to ``org``'s ticket, waiting up to ``wait`` seconds; None if not yet."""
        deadline = time.monotonic() + max(0.0, wait)
        with self._cond:
            while True:
                info = self._tickets.get(ticket_id)
                if info is None:
                    raise UnknownTicket(
                        f"ticket_id: no ticket 0x{ticket_id.hex()} at this relay (unknown or "
                        "expired); submit again"
                    )
                if info.org != org:
                    raise NotYourTicket(
                        f"ticket_id: ticket 0x{ticket_id.hex()} was submitted by another "
                        "organisation; only the submitter may collect it"
                    )
                if info.answer is not None:
                    return info.answer
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def wait_for_submission(self, seen: int, timeout: float) -> int:
        """Block until more than ``seen`` submissions were made or ``timeout`` passed;
        returns the count (the forwarder's wake-up)."""
        with self._cond:
            self._cond.wait_for(lambda: self._submitted > seen, timeout)
            return self._submitted

    def _forget_old(self) -> None:
        while len(self._tickets) > self._max_answers:
            self._tickets.popitem(last=False)
