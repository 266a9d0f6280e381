"""The querier node: the chain's current epoch, its download, and answers as JSON.

Why this module exists: a query must be answered from the union the chain says is
current — anchored by the list's relay and accepted by the roster's quorum of providers
(``anchoring.current_epoch``) — never from whatever a relay serves. So each query asks
the chain first, downloads the epoch from the relay once per epoch (checked against the
anchored digest by ``LookupClient.get_epoch``; cached), and builds a ``Querier`` whose
evaluations go through the relay under the caller's grant and purpose (the relay
charges the node's organisation) and whose label buckets come whole from the relay.

An old epoch stays cached, so a query pinned to it (``epoch=``) goes to the relay and
is refused there as stale: old epochs stop answering at the relay and the holders, not
only in this node's choice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledger.clients.anchor_log import AnchorLogClient
from node.lookup import anchoring, inputs
from node.lookup.epoch import StaleEpochError
from node.lookup.node.errors import LookupRequestError, UnknownLookupList, translated
from node.lookup.querier import MembershipAnswer, Querier
from node.lookup.rpc.client import EpochDownload, LookupClient, bucket_fetcher, querier_evaluate
from node.lookup.rpc.roster import ListRoster
from node.lookup.union import MULTI_HEAD_WINDOWS

__all__ = ["KINDS", "QuerierRole", "membership_json", "membership_list"]

KINDS = ("blacklist", "verify", "multihead")


def membership_list(roster_list: str, kind: str) -> str:
    """The list inside a union a query kind asks: the roster's own list when it is a
    single list, else ``blacklist`` (membership) or ``lending`` (multi-head counts)."""
    if roster_list in inputs.MEMBERSHIP_LISTS:
        return roster_list
    return "lending" if kind == "multihead" else "blacklist"


def membership_json(answer: MembershipAnswer) -> dict[str, Any]:
    return {
        "listed": answer.listed,
        "multiplicity": answer.multiplicity,
        "listings": [
            {"eventTime": listing.event_time, "labels": list(listing.labels)}
            for listing in answer.listings
        ],
    }


class QuerierRole:
    """Queries of the lists this node has rosters for (any node may query, except a
    list's relay)."""

    def __init__(
        self,
        node: str,
        rosters: Mapping[str, ListRoster],
        anchors: AnchorLogClient,
        client: Callable[[str], LookupClient],
        *,
        max_ticket: int,
        answer_timeout: float = 60.0,
    ) -> None:
        self.node = node
        self.rosters = dict(rosters)
        self.anchors = anchors
        self.client = client
        self.max_ticket = max_ticket
        self.answer_timeout = answer_timeout
        self._lock = threading.Lock()
        self._downloads: dict[tuple[str, int], EpochDownload] = {}

    def roster(self, list_name: str) -> ListRoster:
        roster = self.rosters.get(list_name)
        if roster is None:
            raise UnknownLookupList(
                "list", f"this node has no roster for lookup list {list_name!r}"
            )
        if roster.relay == self.node:
            raise LookupRequestError(
                "list", f"this node is the relay of {list_name!r}; a relay must not query"
            )
        return roster

    def _download(self, roster: ListRoster, epoch: int | None) -> EpochDownload:
        name = roster.list_name
        current = anchoring.current_epoch(
            self.anchors, name, roster.relay, roster.providers, roster.quorum
        )
        if epoch is not None and epoch != current.epoch:
            with self._lock:
                cached = self._downloads.get((name, epoch))
            if cached is None or epoch > current.epoch:
                raise StaleEpochError(epoch, current.epoch)
            return cached  # the relay and the holders will say whether it still answers
        with self._lock:
            cached = self._downloads.get((name, current.epoch))
        if cached is None:
            cached = self.client(roster.relay).get_epoch(
                name, expected_digest=current.descriptor_digest
            )
            with self._lock:
                self._downloads[(name, current.epoch)] = cached
        return cached

    def querier(
        self, list_name: str, purpose: str, grant_id: bytes, epoch: int | None = None
    ) -> Querier:
        roster = self.roster(list_name)
        with translated():
            download = self._download(roster, epoch)
            relay = self.client(roster.relay)
            return Querier(
                download.keys,
                download.union,
                bucket_fetcher(relay, list_name, download.descriptor.epoch),
                querier_evaluate(
                    relay, list_name, purpose, grant_id, poll=0.5, timeout=self.answer_timeout
                ),
                anchor=download.descriptor,
            )

    def query(
        self,
        *,
        list_name: str,
        kind: str,
        id_type: str,
        identifier: str,
        purpose: str,
        grant_id: bytes,
        elements: Mapping[str, str] | None = None,
        own_event_time: int | None = None,
        windows: Sequence[int] = MULTI_HEAD_WINDOWS,
        epoch: int | None = None,
    ) -> dict[str, Any]:
        """One query's answer as JSON (the identifier is not echoed back)."""
        if kind not in KINDS:
            raise LookupRequestError("kind", f"expected one of {KINDS}, got {kind!r}")
        if kind == "verify" and not elements:
            raise LookupRequestError("elements", "verify needs at least one element name=value")
        q = self.querier(list_name, purpose, grant_id, epoch)
        out: dict[str, Any] = {"list": list_name, "epoch": q.epoch, "kind": kind}
        with translated():
            if kind == "blacklist":
                inner = membership_list(list_name, kind)
                out["on"] = inner
                out |= membership_json(q.blacklist(id_type, identifier, list_name=inner))
            elif kind == "verify":
                out["matches"] = dict(q.verify(id_type, identifier, elements or {}).matches)
            else:
                inner = membership_list(list_name, kind)
                own = [] if own_event_time is None else [own_event_time]
                answer = q.multihead(
                    id_type,
                    identifier,
                    windows=tuple(windows),
                    list_name=inner,
                    own_event_times=own,
                    now=int(time.time()),
                )
                out["on"] = inner
                out["counts"] = {str(w): n for w, n in answer.counts.items()}
        return out
