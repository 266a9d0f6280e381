"""`LookupNode`: a node's lookup roles built from its config, and the verbs of its API.

Why this module exists: ``node/process.py`` should only say "this node does lookups";
which roles it plays follows from the rosters (``settings.py``), and each role needs a
different set of parts: a **provider** (key holder) keeps a ``HolderState`` (its share
persisted), a query log fed by every evaluated batch, and answers the relay's epoch
steps (``provider.py``); the **relay** keeps the ``RelayState`` (its built epoch
persisted), the meter and its query log in the node's database, the grant admission
(``grants.py``), the forwarding thread and the settlement loop, and drives epochs
(``epochs.py``); **every** node with a roster can query (``queries.py``,
``screens.py``) and, in a REGULATOR organisation, audit others (``audit.py``). Every
node with a query log checkpoints it on chain (``loops.py``).

Lifecycle: build (nothing starts), ``service.add_to`` on the peer server, ``start()``
after the trust view and the peer server (restores persisted state, starts the
forwarder and the timers), ``stop()`` before the peer server stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger.clients import Clients
from ledger.ids import dataset_id_for, name_id
from ledger.roles import Role
from node.identity import TlsIdentity
from node.lookup import inputs
from node.lookup.keyholder import BatchHook
from node.lookup.listing import read_publish_file, read_verify_file
from node.lookup.metering import Meter, MeterPolicy
from node.lookup.node.audit import audit_node
from node.lookup.node.epochs import EpochDriver
from node.lookup.node.errors import (
    BadLookupInput,
    NotInRoleError,
    UnknownLookupList,
    translated,
)
from node.lookup.node.files import LookupFiles
from node.lookup.node.grants import GrantAdmission
from node.lookup.node.loops import Checkpointer, Settler, Ticker
from node.lookup.node.provider import ProviderControl
from node.lookup.node.queries import QuerierRole, membership_list
from node.lookup.node.screens import Screens
from node.lookup.node.settings import LookupSettings
from node.lookup.query_log import QueryLog, QueryRecord
from node.lookup.relay import Relay, RelayPolicy
from node.lookup.rpc.client import LookupClient
from node.lookup.rpc.forward import RelayForwarder
from node.lookup.rpc.roster import ListRoster, RosterError, load_roster
from node.lookup.rpc.service import LookupService, org_label
from node.lookup.rpc.state import HolderState, RelayState
from node.peer.trust import ChainTrust

__all__ = ["HOLDER_LOG", "RELAY_LOG", "LookupNode", "log_anchor_name"]

HOLDER_LOG = "holder"
RELAY_LOG = "relay"


def log_anchor_name(log_name: str) -> bytes:
    """The AnchorLog name a node checkpoints its lookup query log ``log_name`` under."""
    return name_id("lookup-query-log", log_name)


def load_rosters(paths: Sequence[Path]) -> dict[str, ListRoster]:
    rosters: dict[str, ListRoster] = {}
    for path in paths:
        roster = load_roster(path)
        if roster.list_name in rosters:
            raise RosterError("list_name", f"{roster.list_name!r} is named by two roster files")
        rosters[roster.list_name] = roster
    return rosters


class LookupNode:
    """The lookup roles of one node (see the module docstring)."""

    def __init__(
        self,
        settings: LookupSettings,
        *,
        address: str,
        org_id: bytes,
        identity: TlsIdentity,
        trust: ChainTrust,
        clients: Clients,
        database_url: str,
        data_dir: Path,
        first_block: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.address = address
        self.identity = identity
        self.trust = trust
        self.clients = clients
        self.first_block = first_block
        self.clock = clock
        self.rosters = load_rosters(settings.rosters)
        self.files = LookupFiles(data_dir / "lookup")
        self.policy = RelayPolicy(**settings.relay_policy.to_json())
        self._clients: dict[str, LookupClient] = {}
        self._clients_lock = threading.Lock()
        self._logs: list[tuple[QueryLog, bytes]] = []
        anchors = clients.anchors
        provider_lists = [n for n, r in self.rosters.items() if r.holder_index(address)]
        self.relay_lists = [n for n, r in self.rosters.items() if r.relay == address]

        self.holder: HolderState | None = None
        self.control: ProviderControl | None = None
        if provider_lists:
            holder_log = QueryLog(database_url, HOLDER_LOG)
            self._logs.append((holder_log, log_anchor_name(HOLDER_LOG)))

            def on_batch(_list_name: str) -> BatchHook:
                def hook(epoch: int, elements: tuple[bytes, ...]) -> None:
                    holder_log.append("", "", elements, self.clock(), epoch)

                return hook

            self.holder = HolderState(address, self.rosters, on_batch=on_batch)
            self.control = ProviderControl(
                address,
                self.rosters,
                self.holder,
                self.files,
                self.client,
                anchors,
                max_ticket=self.policy.max_ticket,
            )

        self.meter: Meter | None = None
        self.relay_state: RelayState | None = None
        self.driver: EpochDriver | None = None
        self.settler: Settler | None = None
        if self.relay_lists:
            meter = Meter(database_url, MeterPolicy(settings.block_size, settings.period_seconds))
            relay_log = QueryLog(meter.db, RELAY_LOG)
            self._logs.append((relay_log, log_anchor_name(RELAY_LOG)))
            policy = self.policy
            admission = GrantAdmission(
                meter,
                clients.authorizations,
                self.rosters,
                dataset_id_for(org_id, name_id("dataset", settings.service_dataset)),
                self._org_of,
                clock,
                first_block,
            )
            self.meter = meter
            self.relay_state = RelayState(
                address,
                self.rosters,
                lambda _list, epoch: Relay(meter, policy, epoch=epoch, query_log=relay_log),
                admit=admission,
            )
            self.driver = EpochDriver(
                address,
                self.rosters,
                self.relay_state,
                self.files,
                self.client,
                anchors,
                step_timeout=settings.step_timeout,
            )
            self.settler = Settler(meter, relay_log, clients.authorizations, self.files, clock)

        self.querier = QuerierRole(
            address, self.rosters, anchors, self.client, max_ticket=self.policy.max_ticket
        )
        self.screens = Screens(self.querier, data_dir / "lookup" / "screens")
        self.service = LookupService(
            address,
            trust,
            self.rosters,
            holder=self.holder,
            relay=self.relay_state,
            clock=clock,
            control=self.control,
            query_logs=self._query_logs if self._logs else None,
            is_regulator=lambda org: clients.consortium.has_role(org, int(Role.REGULATOR)),
            max_contribution_entries=settings.max_contribution_entries,
        )
        self._forwarder: RelayForwarder | None = None
        jobs: list[tuple[float, str, Callable[[], object]]] = []
        if self._logs:
            jobs.append(
                (settings.checkpoint_seconds, "checkpoint", Checkpointer(anchors, self._logs))
            )
        if self.settler is not None:
            jobs.append((settings.settle_seconds, "settlement", self.settler))
        self._ticker = Ticker(jobs)

    # ------------------------------------------------------------------ plumbing

    def client(self, node: str) -> LookupClient:
        """A (cached) client of ``node``'s lookup service."""
        with self._clients_lock:
            client = self._clients.get(node)
            if client is None:
                client = LookupClient(self.trust, self.identity, node, timeout=60.0)
                self._clients[node] = client
            return client

    def _org_of(self, node: str) -> str | None:
        record = self.trust.record(node)
        return None if record is None else org_label(record.org_id)

    def _query_logs(self) -> list[tuple[str, bytes, Sequence[QueryRecord]]]:
        return [(log.name, anchor, log.records()) for log, anchor in self._logs]

    def start(self) -> LookupNode:
        """Restore persisted state, then start the forwarder and the timers."""
        if self.holder is not None:
            for name, roster in self.rosters.items():
                if roster.holder_index(self.address) is None:
                    continue
                saved = self.files.share(name)
                if saved is not None:
                    self.holder.restore(name, *saved)
        if self.relay_state is not None:
            for name in self.relay_lists:
                published = self.files.published(name)
                if published is not None:
                    self.relay_state.restore(name, published)
            providers = {p for n in self.relay_lists for p in self.rosters[n].providers}
            self._forwarder = RelayForwarder(
                self.relay_state, {p: self.client(p) for p in sorted(providers)}
            ).start()
        self._ticker.start()
        self.screens.resume()
        return self

    def stop(self) -> None:
        self.screens.stop()
        self._ticker.stop()
        if self._forwarder is not None:
            self._forwarder.stop()
        with self._clients_lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        for log, _ in self._logs:
            log.close()
        if self.meter is not None:
            self.meter.close()

    def _roster(self, list_name: str) -> ListRoster:
        roster = self.rosters.get(list_name)
        if roster is None:
            raise UnknownLookupList(
                "list", f"this node has no roster for lookup list {list_name!r}"
            )
        return roster

    # ------------------------------------------------------------------ verbs

    def status(self) -> dict[str, Any]:
        lists = []
        for name, roster in self.rosters.items():
            index = roster.holder_index(self.address)
            role = "relay" if roster.relay == self.address else "provider" if index else "querier"
            entry: dict[str, Any] = {
                "list": name,
                "role": role,
                "t": roster.t,
                "n": roster.n,
                "quorum": roster.quorum,
                "relay": roster.relay,
                "providers": list(roster.providers),
            }
            if index:
                entry["pendingEntries"] = len(self.files.pending(name))
            lists.append(entry)
        return {"node": self.address, "lists": lists}

    def publish(
        self,
        list_name: str,
        path: Path,
        *,
        verify: bool = False,
        default_type: str | None = None,
    ) -> dict[str, Any]:
        """Read a publish (or ``verify``) file and keep it as this provider's pending
        list part for the next epoch; nothing is kept if any row is bad."""
        roster = self._roster(list_name)
        if roster.holder_index(self.address) is None:
            raise NotInRoleError(
                "list", f"this node is not a provider of {list_name!r}; only providers publish"
            )
        now = int(self.clock())
        try:
            if verify:
                entries = read_verify_file(path, now=now, default_kind=default_type)
            else:
                entries = read_publish_file(
                    path,
                    now=now,
                    default_list=membership_list(list_name, "blacklist"),
                    default_kind=default_type,
                )
        except ValueError as exc:  # ListingError and its kin name file, row and column
            raise BadLookupInput("file", str(exc)) from None
        single = (*inputs.MEMBERSHIP_LISTS, inputs.VERIFY_LIST)
        stray = sorted({e.list_name for e in entries if e.list_name != list_name})
        if list_name in single and stray:
            raise BadLookupInput(
                "file",
                f"rows for list(s) {stray} in a file published to the single list "
                f"{list_name!r}: its union would never answer them; publish them to their list",
            )
        self.files.save_pending(list_name, "verify" if verify else "publish", entries)
        return {
            "list": list_name,
            "part": "verify" if verify else "publish",
            "entries": len(entries),
            "pendingEntries": len(self.files.pending(list_name)),
            "next": (
                f"the list's relay runs `provnet lookup epoch --list {list_name}`; these "
                "entries are in the union from that epoch on"
            ),
        }

    def run_epoch(self, list_name: str) -> dict[str, Any]:
        self._roster(list_name)
        if self.driver is None or list_name not in self.relay_lists:
            raise NotInRoleError(
                "list", f"this node is not the relay of {list_name!r}; run it on the relay"
            )
        with translated("epoch"):
            return self.driver.run(list_name)

    def audit(self, node: str) -> dict[str, Any]:
        return audit_node(
            node,
            self.client,
            self.clients.anchors,
            self.clients.authorizations,
            self.first_block,
        )
