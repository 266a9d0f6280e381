"""The relay's one-command epoch: `provnet lookup epoch --list L` (``POST /lookup/{list}/epochs``).

Why this module exists: an epoch needs every role in order — the providers' DKG, the
relay opening the key epoch, each provider publishing its pending list through the
relay, the build, the anchor, each provider's acceptance — and a provider that is
offline must not stop it while ``t`` (for keys) and ``quorum`` (for acceptance) remain.
The relay node, which holds no key share, drives the steps over the peer plane
(``provider.py`` runs them at each provider) and reports who took part.

Epoch number: one past the later of the relay's anchored epoch and the key epoch it
has open (a run that failed after the DKG used that number: holders never take a
second dealing for it). A provider that could not be reached is excluded as a dealer
by every holder alike. A reachable holder that refused a dealer's share (a complaint)
starts a justification round (GJKR): the dealer reveals that one share to the relay,
which checks it against the dealer's commitments; a dealer whose share fails, that
does not answer, or that drew ``t`` or more complaints is excluded; otherwise the
relay hands the share to the holder, and a holder that still refuses it is named as a
false complainer and left out of the epoch, while the dealer stays qualified. So a
lying holder cannot exclude an honest dealer, and the report says who cheated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent import futures
from typing import Any, TypeVar

from ledger.clients.anchor_log import AnchorLogClient
from node.crypto import threshold_oprf
from node.crypto.threshold_oprf import InvalidDealingError
from node.lookup import anchoring
from node.lookup.epoch import StaleEpochError
from node.lookup.node.errors import EpochRunError
from node.lookup.node.files import LookupFiles
from node.lookup.rpc.client import LookupCallError, LookupClient, LookupRefused
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

    def run_dkg(self, roster: ListRoster, epoch: int, report: dict[str, Any]) -> list[str]:
        """The DKG of ``epoch`` with its justification round; the providers now holding a
        share of the one common key set (at least ``t``), or :class:`EpochRunError`.

        Fills ``report["providers"]`` (each provider's part), ``report["excluded"]``
        (disqualified dealers) and ``report["complaints"]`` (one record per complaint:
        dealer, holder, outcome; see :meth:`_justify`).
        """
        name, timeout = roster.list_name, self.step_timeout
        status: dict[str, str] = report.setdefault("providers", {})
        complaints: list[dict[str, Any]] = report.setdefault("complaints", [])
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
        left_out: set[int] = set()  # holders without dealer i's share: no completion
        for p in online:
            failed = prepared[p]
            assert isinstance(failed, dict)
            accused = {j: why for j, why in failed.items() if j in reachable}
            if not accused:
                continue
            dealer = indices[p]
            if len(accused) >= roster.t:
                # Justifying t complaints would hand the relay t points of the dealer's
                # polynomial, i.e. its secret; with fewer than t cheating members at
                # least one of these complaints is honest (GJKR's rule).
                exclude.add(dealer)
                status[p] = f"excluded as dealer: {len(accused)} complaints, t={roster.t}"
                for j, why in sorted(accused.items()):
                    complaints.append(
                        self._record(
                            roster,
                            dealer,
                            j,
                            why,
                            "too-many-complaints",
                            f"dealer {dealer} drew {len(accused)} complaints (t={roster.t}): "
                            "excluded without justification",
                        )
                    )
                continue
            for j, why in sorted(accused.items()):
                record = self._justify(roster, epoch, dealer, j, why)
                complaints.append(record)
                if record["outcome"] in ("justified-complaint", "not-justified"):
                    exclude.add(dealer)
                    status[p] = f"excluded as dealer: {record['detail']}"
                elif record["outcome"] in ("false-complaint", "holder-unreachable"):
                    left_out.add(j)
        for record in complaints:
            if record["outcome"] in ("false-complaint", "holder-unreachable"):
                status[record["holderNode"]] = f"left out of epoch {epoch}: {record['detail']}"
        report["excluded"] = sorted(exclude)
        completing = [p for p in online if indices[p] not in left_out]
        if roster.n - len(exclude) < roster.t or len(completing) < roster.t:
            raise EpochRunError(
                "providers",
                f"epoch {epoch} of {name!r}: {roster.n - len(exclude)} qualified dealers and "
                f"{len(completing)} providers to hold shares, need t={roster.t}; {status}",
            )
        completed = self._everyone(
            completing, lambda c: c.complete_epoch(name, epoch, sorted(exclude), timeout=timeout)
        )
        holders = [p for p in completing if not isinstance(completed[p], Exception)]
        digests = {completed[p].digest for p in holders}  # type: ignore[union-attr]
        for p in completing:
            if isinstance(completed[p], Exception):
                status[p] = f"could not complete the DKG: {completed[p]}"
        if len(digests) != 1 or len(holders) < roster.t:
            raise EpochRunError(
                "providers",
                f"epoch {epoch} of {name!r}: the DKG ended with {len(digests)} different key "
                f"sets over {len(holders)} holders; {status}",
            )
        return holders

    @staticmethod
    def _record(
        roster: ListRoster, dealer: int, holder: int, complaint: str, outcome: str, detail: str
    ) -> dict[str, Any]:
        """One complaint's line in the report, and in the relay's log."""
        log.warning(
            "DKG of %s: complaint by holder %d against dealer %d: %s (%s)",
            roster.list_name,
            holder,
            dealer,
            outcome,
            detail,
        )
        return {
            "dealer": dealer,
            "dealerNode": roster.holder(dealer),
            "holder": holder,
            "holderNode": roster.holder(holder),
            "complaint": complaint,
            "outcome": outcome,
            "detail": detail,
        }

    def _justify(
        self, roster: ListRoster, epoch: int, dealer: int, holder: int, complaint: str
    ) -> dict[str, Any]:
        """Settle holder ``holder``'s complaint against ``dealer`` (GJKR's justification).

        The dealer reveals the share it sent (``Justify``); the relay checks it against
        the dealer's commitments with ``threshold_oprf.verify_share``. Outcomes:

        * ``not-justified`` — the dealer did not answer or refused: excluded;
        * ``justified-complaint`` — the share fails the commitments: the dealer cheated,
          excluded;
        * ``resolved`` — the share verifies and the holder took it (``DeliverJustified``):
          a transport fault or a false complaint withdrawn; the dealer stays qualified;
        * ``false-complaint`` — the share verifies and the holder still refuses it: the
          dealer stays qualified and the holder is named and left out of this epoch, so
          a lying holder cannot exclude an honest dealer;
        * ``holder-unreachable`` — the share verifies but the holder could not be given
          it: the dealer stays qualified, the holder (lacking that share) is left out.
        """
        name, timeout = roster.list_name, self.step_timeout
        dealer_node, holder_node = roster.holder(dealer), roster.holder(holder)
        try:
            commitments, share = self.client(dealer_node).justify(
                name, epoch, holder, timeout=timeout
            )
        except (LookupCallError, StaleEpochError) as exc:
            return self._record(
                roster,
                dealer,
                holder,
                complaint,
                "not-justified",
                f"dealer {dealer} did not justify its share for holder {holder}: {exc}",
            )
        try:
            if len(commitments) != roster.t:
                raise InvalidDealingError(
                    dealer, f"committed to {len(commitments)} coefficients, t={roster.t}"
                )
            threshold_oprf.verify_share(commitments, holder, share, dealer=dealer)
        except InvalidDealingError as exc:
            return self._record(
                roster,
                dealer,
                holder,
                complaint,
                "justified-complaint",
                f"dealer {dealer}'s share for holder {holder} does not match its commitments "
                f"(justified complaint): {exc}",
            )
        try:
            self.client(holder_node).deliver_justified(
                name, epoch, dealer, commitments, share, timeout=timeout
            )
        except LookupRefused as exc:
            return self._record(
                roster,
                dealer,
                holder,
                complaint,
                "false-complaint",
                f"holder {holder} ({holder_node}) refused dealer {dealer}'s share, which "
                f"matches the dealer's commitments (false complaint); dealer {dealer} stays "
                f"qualified, holder {holder} is left out of epoch {epoch}: {exc}",
            )
        except (LookupCallError, StaleEpochError) as exc:
            return self._record(
                roster,
                dealer,
                holder,
                complaint,
                "holder-unreachable",
                f"dealer {dealer} justified its share for holder {holder} ({holder_node}), "
                f"but it could not be handed over; dealer {dealer} stays qualified, holder "
                f"{holder} is left out of epoch {epoch}: {exc}",
            )
        return self._record(
            roster,
            dealer,
            holder,
            complaint,
            "resolved",
            f"dealer {dealer} justified its share and holder {holder} took it; dealer "
            f"{dealer} stays qualified",
        )

    def _run(self, roster: ListRoster) -> dict[str, Any]:
        name, timeout = roster.list_name, self.step_timeout
        anchored, _ = self.anchors.latest(
            self.anchors.log_id_for(self.node, anchoring.epoch_log_name(name))
        )
        epoch = max(anchored, self.state.open_epoch_number(name)) + 1
        report: dict[str, Any] = {"list": name, "epoch": epoch, "providers": {}}
        status: dict[str, str] = report["providers"]

        # 1. DKG: every reachable provider deals to every holder; complaints justified.
        holders = self.run_dkg(roster, epoch, report)

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
