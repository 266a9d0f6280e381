"""A provider node's part of an epoch, each step started by the list's relay.

Why this module exists: `provnet lookup epoch` runs on the relay only, so an epoch
needs no operator at each provider; the relay calls these steps over the peer plane
(``PrepareEpoch`` .. ``AcceptEpoch``, callable by the list's relay alone) and each runs
here, on the provider's own keys and data:

1. **prepare** — deal this provider's DKG shares to every holder (``deal_epoch``); a
   retry re-sends the same dealing (a holder keeps the first dealing of each dealer);
   **justify** — when a holder refused this provider's share (a complaint), reveal that
   one share and its commitments to the relay, which checks them and hands the share
   to the holder; only for a holder that refused, and for fewer than ``t`` holders, so
   the relay never learns enough shares to recover this provider's polynomial;
2. **complete** — combine the qualified dealings into this epoch's share, then persist
   it (a restarted provider keeps answering) and forget the dealing;
3. **publish** — evaluate the pending list (what the operator gave `provnet lookup
   publish`) through the relay, like any query, and contribute it; a retry sends the
   same contribution;
4. **accept** — download the built union, check every own listing is in it unaltered
   (``publisher.check_inclusion``), and only then accept ``(epoch, digest)`` on chain.

The provider decides nothing on the relay's word: it accepts only a union that holds
its own entries, and the relay cannot make it sign another digest than the one it
downloaded and checked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping

from ledger.clients.anchor_log import AnchorLogClient
from node.crypto import threshold_oprf
from node.lookup import anchoring
from node.lookup.epoch import EpochKeys, EpochKeysMismatch
from node.lookup.node.files import LookupFiles
from node.lookup.node.grants import PUBLISH_PURPOSE, publish_grant
from node.lookup.publisher import check_inclusion, publish
from node.lookup.rpc.client import LookupClient, deal_epoch, fetch_union, querier_evaluate
from node.lookup.rpc.roster import ListRoster
from node.lookup.rpc.state import HolderState, JustificationRefused, NoEpochError
from node.lookup.union import Contribution

__all__ = ["ProviderControl"]


class ProviderControl:
    """``rpc.service.EpochControl`` on a provider node."""

    def __init__(
        self,
        node: str,
        rosters: Mapping[str, ListRoster],
        holder: HolderState,
        files: LookupFiles,
        client: Callable[[str], LookupClient],
        anchors: AnchorLogClient,
        *,
        max_ticket: int,
        answer_timeout: float = 60.0,
    ) -> None:
        self.node = node
        self.rosters = dict(rosters)
        self.holder = holder
        self.files = files
        self.client = client
        self.anchors = anchors
        self.max_ticket = max_ticket
        self.answer_timeout = answer_timeout
        self._lock = threading.Lock()
        self._dealings: dict[tuple[str, int], threshold_oprf.Dealing] = {}
        # Per (list, epoch): the holders that did not take this dealer's share in the
        # last prepare (the only ones it justifies), and those it already justified.
        self._refused: dict[tuple[str, int], frozenset[int]] = {}
        self._justified: dict[tuple[str, int], set[int]] = {}
        self._contributions: dict[tuple[str, int], tuple[EpochKeys, Contribution]] = {}

    def prepare(self, list_name: str, epoch: int) -> Mapping[int, str]:
        roster = self.rosters[list_name]
        with self._lock:
            dealing = self._dealings.get((list_name, epoch))
            if dealing is None:
                dealing = threshold_oprf.deal(roster.t, roster.n)
                self._dealings = {k: v for k, v in self._dealings.items() if k[0] != list_name}
                self._dealings[(list_name, epoch)] = dealing
        others = {p: self.client(p) for p in roster.providers if p != self.node}
        failed = deal_epoch(roster, epoch, self.node, others, self.holder, dealing)
        with self._lock:
            if self._dealings.get((list_name, epoch)) is dealing:
                self._refused = {k: v for k, v in self._refused.items() if k[0] != list_name}
                self._refused[(list_name, epoch)] = frozenset(failed)
                self._justified = {
                    k: v for k, v in self._justified.items() if k[0] != list_name or k[1] == epoch
                }
        return failed

    def justify(self, list_name: str, epoch: int, holder: int) -> tuple[list[bytes], bytes]:
        """The commitments and the share this provider dealt to ``holder`` for ``epoch``.

        Why so narrow: each revealed share is one point of this provider's polynomial,
        and ``t`` of them give its secret (its part of the epoch key) to the relay. So it
        answers only for an epoch it dealt in and has not completed, only for a holder
        that refused its share in the last prepare, and for at most ``t - 1`` holders;
        anything else is :class:`JustificationRefused` (the relay then excludes it, as
        GJKR excludes a dealer with ``t`` or more complaints). The share is the one
        already sent, never a new one: the relay checks it against the commitments.
        """
        roster = self.rosters[list_name]
        with self._lock:
            dealing = self._dealings.get((list_name, epoch))
            if dealing is None:
                raise JustificationRefused(
                    f"this provider holds no dealing of list {list_name!r} epoch {epoch} "
                    "(it did not deal in that epoch, or the epoch was completed); nothing "
                    "to justify"
                )
            refused = self._refused.get((list_name, epoch), frozenset())
            if holder not in refused:
                raise JustificationRefused(
                    f"holder {holder} did not refuse this provider's share of list "
                    f"{list_name!r} epoch {epoch}; only a complaining holder's share is "
                    "revealed"
                )
            justified = self._justified.setdefault((list_name, epoch), set())
            if holder not in justified and len(justified) + 1 >= roster.t:
                raise JustificationRefused(
                    f"justifying holder {holder} too would reveal {len(justified) + 1} "
                    f"shares of this provider's polynomial for list {list_name!r} epoch "
                    f"{epoch}, and t={roster.t} of them give its secret; exclude this dealer"
                )
            justified.add(holder)
            return list(dealing.commitments), dealing.shares[holder]

    def complete(self, list_name: str, epoch: int, exclude: Collection[int]) -> EpochKeys:
        current = self.holder.export(list_name)
        if current is not None and current[1].epoch == epoch:
            return current[1]  # a retry: already combined
        keys = self.holder.complete_dkg(list_name, epoch, exclude)
        exported = self.holder.export(list_name)
        if exported is not None:
            self.files.save_share(list_name, *exported)
        with self._lock:  # the DKG is over: no justification after it, no shares kept
            self._dealings.pop((list_name, epoch), None)
            self._refused.pop((list_name, epoch), None)
            self._justified.pop((list_name, epoch), None)
        return keys

    def _keys(self, list_name: str, epoch: int) -> EpochKeys:
        current = self.holder.export(list_name)
        if current is None or current[1].epoch != epoch:
            raise NoEpochError(
                f"this provider holds no key share of list {list_name!r} epoch {epoch}; "
                "the relay must run the DKG steps first"
            )
        return current[1]

    def publish(self, list_name: str, epoch: int) -> int:
        keys = self._keys(list_name, epoch)
        relay = self.client(self.rosters[list_name].relay)
        with self._lock:
            done = self._contributions.get((list_name, epoch))
        if done is None:
            entries = self.files.pending(list_name)
            evaluate = querier_evaluate(
                relay,
                list_name,
                PUBLISH_PURPOSE,
                publish_grant(list_name),
                poll=0.5,
                timeout=self.answer_timeout,
            )
            contribution = publish(keys, entries, evaluate, chunk_size=self.max_ticket)
            done = (keys, contribution)
            with self._lock:
                self._contributions = {
                    k: v for k, v in self._contributions.items() if k[0] != list_name
                }
                self._contributions[(list_name, epoch)] = done
        relay.contribute(list_name, epoch, done[0], done[1])
        return len(done[1].entries)

    def accept(self, list_name: str, epoch: int, digest: bytes) -> bool:
        with self._lock:
            done = self._contributions.get((list_name, epoch))
        if done is None:
            raise NoEpochError(
                f"this provider contributed nothing to list {list_name!r} epoch {epoch}; "
                "it does not accept a union it did not check"
            )
        relay = self.client(self.rosters[list_name].relay)
        download, union = fetch_union(relay, list_name, expected_digest=digest)
        if download.descriptor.epoch != epoch or download.keys.digest != done[0].digest:
            raise EpochKeysMismatch(
                f"the relay serves epoch {download.descriptor.epoch} under other keys than "
                f"this provider's epoch {epoch}; not accepted"
            )
        check_inclusion(union, done[1], epoch=epoch)
        return anchoring.accept_epoch(self.anchors, list_name, epoch, digest)
