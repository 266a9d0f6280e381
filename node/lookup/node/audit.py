"""The regulator's audit of a lookup node's query logs: verified, then counted.

Why this module exists: DESIGN §6 asks that a regulator count who queried how often,
for what purpose, without learning what. The regulator's node fetches a relay's or a
provider's logs over the peer plane (``GetQueryLog``, served only to a REGULATOR
organisation's nodes), verifies every record against the checkpoint the owner anchored
in ``AnchorLog`` (``query_log.verify_log``: nothing dropped, altered or reordered), and
counts the anchored records per organisation and UTC day (``count_per_org_day``) and
per purpose. Records after the last checkpoint are reported as not yet anchored, not
counted. The grants' settled uses come from the chain's ``UsesSettled`` events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ledger.artifacts import abi
from ledger.clients.anchor_log import AnchorLogClient
from ledger.clients.authorizations import AuthorizationRegistryClient
from ledger.events import EventReader, Source
from node.lookup.node.errors import translated
from node.lookup.query_log import Checkpoint, QueryLogError, count_per_org_day, verify_log
from node.lookup.rpc.client import LookupClient

__all__ = ["audit_node", "checkpoint_history", "settled_uses"]


def settled_uses(
    authorizations: AuthorizationRegistryClient, first_block: int
) -> list[dict[str, Any]]:
    """Every ``UsesSettled`` event: grant, uses, settlement digest, settling org."""
    reader = EventReader(
        authorizations.chain,
        [Source("AuthorizationRegistry", authorizations.address, abi("AuthorizationRegistry"))],
    )
    return [
        {
            "grantId": "0x" + bytes(e.args["grantId"]).hex(),
            "uses": int(e.args["uses"]),
            "settlement": "0x" + bytes(e.args["settlement"]).hex(),
            "byOrg": "0x" + bytes(e.args["byOrg"]).hex(),
            "block": e.block_number,
        }
        for e in reader.read(first_block)
        if e.name == "UsesSettled"
    ]


def checkpoint_history(anchors: AnchorLogClient, first_block: int) -> dict[bytes, list[Checkpoint]]:
    """Every log's anchored checkpoints, oldest first, from ``Checkpointed`` events."""
    reader = EventReader(anchors.chain, [Source("AnchorLog", anchors.address, abi("AnchorLog"))])
    history: dict[bytes, list[Checkpoint]] = {}
    for e in reader.read(first_block):
        if e.name == "Checkpointed":
            log_id = bytes(e.args["logId"])
            history.setdefault(log_id, []).append(
                Checkpoint(
                    log_id, int(e.args["treeSize"]), bytes(e.args["rootHash"]), e.transaction_hash
                )
            )
    return history


def audit_node(
    node: str,
    client: Callable[[str], LookupClient],
    anchors: AnchorLogClient,
    authorizations: AuthorizationRegistryClient,
    first_block: int,
) -> dict[str, Any]:
    """Fetch, verify and count ``node``'s query logs; the report as JSON."""
    with translated("node"):
        logs = client(node).get_query_log()
    report: dict[str, Any] = {"node": node, "logs": []}
    history = checkpoint_history(anchors, first_block)
    for name, anchor_name, records in logs:
        log_id = anchors.log_id_for(node, anchor_name)
        size, root = anchors.latest(log_id)
        entry: dict[str, Any] = {
            "log": name,
            "logId": "0x" + log_id.hex(),
            "records": len(records),
            "anchored": size,
        }
        if size == 0:
            entry["verified"] = False
            entry["problem"] = "no checkpoint on chain yet"
        else:
            earlier = [c for c in history.get(log_id, []) if c.tree_size < size]
            entry["checkpoints"] = len(earlier) + 1
            try:
                previous = None
                for checkpoint in [*earlier, Checkpoint(log_id, size, root)]:
                    verify_log(records, checkpoint, previous)
                    previous = checkpoint
                entry["verified"] = True
            except QueryLogError as exc:
                entry["verified"] = False
                entry["problem"] = f"{type(exc).__name__}: {exc}"
        counted = records[:size] if entry["verified"] else []
        entry["perOrgDay"] = [
            {"org": org, "day": day.isoformat(), "queries": n}
            for (org, day), n in sorted(count_per_org_day(counted).items())
        ]
        purposes: Counter[tuple[str, str]] = Counter((r.querier_org, r.purpose) for r in counted)
        entry["perOrgPurpose"] = [
            {"org": org, "purpose": purpose, "queries": n}
            for (org, purpose), n in sorted(purposes.items())
        ]
        report["logs"].append(entry)
    report["verified"] = bool(report["logs"]) and all(e["verified"] for e in report["logs"])
    report["settled"] = settled_uses(authorizations, first_block)
    return report
