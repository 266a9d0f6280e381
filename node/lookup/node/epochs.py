"""The relay's one-command epoch: `provnet lookup epoch --list L` (``POST /lookup/{list}/epochs``).

Why this module exists: an epoch needs every role in order — the providers' DKG, the
relay opening the key epoch, each provider publishing its pending list through the
relay, the build, the anchor, each provider's acceptance — and a provider that is
offline must not stop it while ``t`` (for keys) and ``quorum`` (for acceptance) remain.
The relay node, which holds no key share, drives the steps over the peer plane
(``provider.py`` runs them at each provider) and reports who took part.

Epoch number: one past the later of the relay's anchored epoch and the key epoch it
has open (a run that failed after the DKG used that number: holders never take a
second dealing for it). The qualified dealers are the providers that dealt to every
reachable holder; a provider that could not be reached, or whose share some reachable
holder refused (a complaint), is excluded by every holder alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent import futures
from typing import Any, TypeVar

from ledger.clients.anchor_log import AnchorLogClient
from node.lookup import anchoring
from node.lookup.node.errors import EpochRunError
from node.lookup.node.files import LookupFiles
from node.lookup.rpc.client import LookupClient
from node.lookup.rpc.roster import ListRoster
from node.lookup.rpc.state import RelayState

__all__ = ["EpochDriver"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class EpochDriver:
    """Runs epochs of the lists this node relays."""

    def __init__(
        self,
        node: str,
        rosters: Mapping[str, ListRoster],
        state: RelayState,
        files: LookupFiles,
        client: Callable[[str], LookupClient],
        anchors: AnchorLogClient,
        *,
        step_timeout: float,
    ) -> None:
        self.node = node
        self.rosters = dict(rosters)
        self.state = state
        self.files = files
        self.client = client
        self.anchors = anchors
        self.step_timeout = step_timeout
        self._locks = {name: threading.Lock() for name in self.rosters}

    def _everyone(
        self, providers: list[str], call: Callable[[LookupClient], T]
    ) -> dict[str, T | Exception]:
        """``call`` on each provider's client in parallel: its result or its error."""
        if not providers:
            return {}
        with futures.ThreadPoolExecutor(len(providers)) as pool:
            pending = {p: pool.submit(call, self.client(p)) for p in providers}
            out: dict[str, T | Exception] = {}
            for p, f in pending.items():
                try:
                    out[p] = f.result()
                except Exception as exc:
                    out[p] = exc
            return out

    def run(self, list_name: str) -> dict[str, Any]:
        roster = self.rosters[list_name]
        if not self._locks[list_name].acquire(blocking=False):
            raise EpochRunError("list", f"an epoch of list {list_name!r} is already running")
        try:
            return self._run(roster)
        finally:
            self._locks[list_name].release()

    def _run(self, roster: ListRoster) -> dict[str, Any]:
        name, timeout = roster.list_name, self.step_timeout
        anchored, _ = self.anchors.latest(
            self.anchors.log_id_for(self.node, anchoring.epoch_log_name(name))
        )
        epoch = max(anchored, self.state.open_epoch_number(name)) + 1
        report: dict[str, Any] = {"list": name, "epoch": epoch, "providers": {}}
        status: dict[str, str] = report["providers"]

        # 1. DKG: every reachable provider deals to every holder.
        prepared = self._everyone(
            list(roster.providers), lambda c: c.prepare_epoch(name, epoch, timeout=timeout)
        )
        online = [p for p, r in prepared.items() if not isinstance(r, Exception)]
        for p, r in prepared.items():
            if isinstance(r, Exception):
                status[p] = f"offline or refused the DKG: {r}"
        indices = {p: i for i, p in enumerate(roster.providers, start=1)}
        reachable = {indices[p] for p in online}
        exclude = set(range(1, roster.n + 1)) - reachable
        for p in online:
            failed = prepared[p]
            assert isinstance(failed, dict)
            if set(failed) & reachable:
                exclude.add(indices[p])
                status[p] = f"excluded as dealer: {failed}"
        if roster.n - len(exclude) < roster.t or len(online) < roster.t:
            raise EpochRunError(
                "providers",
                f"epoch {epoch} of {name!r}: {roster.n - len(exclude)} qualified dealers and "
                f"{len(online)} reachable providers, need t={roster.t}; {status}",
            )
        completed = self._everyone(
            online, lambda c: c.complete_epoch(name, epoch, sorted(exclude), timeout=timeout)
        )
        holders = [p for p in online if not isinstance(completed[p], Exception)]
        digests = {completed[p].digest for p in holders}  # type: ignore[union-attr]
        for p in online:
            if isinstance(completed[p], Exception):
                status[p] = f"could not complete the DKG: {completed[p]}"
        if len(digests) != 1 or len(holders) < roster.t:
            raise EpochRunError(
                "providers",
                f"epoch {epoch} of {name!r}: the DKG ended with {len(digests)} different key "
                f"sets over {len(holders)} holders; {status}",
            )

        # 2. Open the key epoch, let each provider publish through the relay, build.
        self.state.open_epoch(name, epoch)
        published = self._everyone(holders, lambda c: c.publish_epoch(name, epoch, timeout=timeout))
        for p in holders:
            result = published[p]
            status[p] = (
                f"contributed {result} entries"
                if not isinstance(result, Exception)
                else f"did not contribute: {result}"
            )
        contributors = self.state.contributors(name, epoch)
        if len(contributors) < roster.quorum:
            raise EpochRunError(
                "providers",
                f"epoch {epoch} of {name!r}: {len(contributors)} contributions, fewer than "
                f"the quorum of {roster.quorum}; {status}",
            )
        if len(contributors) < roster.n:
            report["note"] = (
                f"built from {len(contributors)} of {roster.n} providers' contributions "
                f"(quorum {roster.quorum}): the others did not contribute in time"
            )
        built = self.state.build(name, epoch)
        self.files.save_published(name, built)
        digest = built.descriptor.digest
        anchoring.anchor_epoch(self.anchors, name, epoch, digest)
        report["descriptorDigest"] = "0x" + digest.hex()
        report["entries"] = len(built.union.table)

        # 3. Each contributor checks its inclusion and accepts on chain.
        accepting = [roster.holder(i) for i in contributors]
        accepted = self._everyone(
            accepting, lambda c: c.accept_epoch(name, epoch, digest, timeout=timeout)
        )
        for p, result in accepted.items():
            if isinstance(result, Exception):
                status[p] = f"did not accept: {result}"
            else:
                status[p] = status[p] + ", accepted"
        try:
            current = anchoring.current_epoch(
                self.anchors, name, self.node, roster.providers, roster.quorum
            )
            report["acceptedBy"] = list(current.accepted_by)
            report["usable"] = current.epoch == epoch
        except (anchoring.UnionNotAcceptedError, anchoring.EpochNotAnchoredError) as exc:
            report["acceptedBy"] = []
            report["usable"] = False
            report["problem"] = str(exc)
        report["next"] = (
            f"queriers: provnet lookup query ID --list {name} (epoch {epoch} is current)"
            if report["usable"]
            else "fewer providers than the quorum accepted: check their logs, publish, rerun"
        )
        return report
