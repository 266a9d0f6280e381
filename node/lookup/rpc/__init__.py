"""Anonymous lookups over the nodes' mutual-TLS gRPC (`node/lookup/lookup.proto`).

The lookup roles exist as in-process libraries (``node/lookup/*.py``); this package
puts the peer plane between them, as `docs/lookup.md` ("Transport") describes:

* ``roster`` — :class:`ListRoster`, who plays which part for one list (JSON file);
* ``state`` — what a key holder (:class:`HolderState`) and a relay
  (:class:`RelayState`) keep between calls, behind the small interfaces the servicer
  uses (:class:`HolderRole`, :class:`RelayRole`), in memory here;
* ``service`` — :class:`LookupService`, the servicer: per-call authentication against
  the chain, role checks against the roster, field checks, named statuses; added to a
  ``PeerServer`` through ``extra_services=[service.add_to]``;
* ``client`` — :class:`LookupClient` and the library's hops made of it
  (``querier_evaluate``, ``bucket_fetcher``, ``fetch_union``, ``deal_epoch``);
* ``forward`` — :class:`RelayForwarder`, the relay node's loop that sends due batches
  to the key holders and routes their answers to tickets.
"""

from node.lookup.rpc.client import (
    EpochDownload,
    LookupCallError,
    LookupClient,
    LookupDenied,
    LookupNotFound,
    LookupRefused,
    LookupTimeout,
    LookupUnavailable,
    bucket_fetcher,
    deal_epoch,
    fetch_union,
    querier_evaluate,
)
from node.lookup.rpc.forward import RelayForwarder
from node.lookup.rpc.roster import ListRoster, RosterError, load_roster
from node.lookup.rpc.service import LookupService, org_label
from node.lookup.rpc.state import (
    HolderRole,
    HolderState,
    Published,
    RelayRole,
    RelayState,
)

__all__ = [
    "EpochDownload",
    "HolderRole",
    "HolderState",
    "ListRoster",
    "LookupCallError",
    "LookupClient",
    "LookupDenied",
    "LookupNotFound",
    "LookupRefused",
    "LookupService",
    "LookupTimeout",
    "LookupUnavailable",
    "Published",
    "RelayForwarder",
    "RelayRole",
    "RelayState",
    "RosterError",
    "bucket_fetcher",
    "deal_epoch",
    "fetch_union",
    "load_roster",
    "org_label",
    "querier_evaluate",
]
