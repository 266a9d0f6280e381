"""Who is in the consortium: organisations and their nodes, rebuilt from chain events.

Operators refer to organisations by name ("Bank A"), the chain by a 32-byte id; the
mapping is public (`OrgProposed` carries the name), so any node or CLI can look it up
instead of asking a newcomer to compute ids by hand. Current status, roles and admin
come from the contract's views, not from replaying every governance event, so the
answer is the chain's own word at the latest block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.artifacts import abi
from ledger.clients.consortium import ConsortiumClient, NodeStatus, OrgStatus
from ledger.events import EventReader, Source
from ledger.ids import InvalidInput, hex32
from ledger.roles import Role


@dataclass(frozen=True)
class NodeEntry:
    address: str
    status: str  # ACTIVE or REVOKED
    endpoint: str
    tls_cert_sha256: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "status": self.status,
            "endpoint": self.endpoint,
            "tlsCertSha256": hex32(self.tls_cert_sha256),
        }


@dataclass(frozen=True)
class OrgEntry:
    org_id: bytes
    name: str
    roles: int
    status: str  # PROPOSED, ACTIVE or SUSPENDED
    admin: str
    nodes: tuple[NodeEntry, ...]

    @property
    def role_names(self) -> list[str]:
        return [r.name.lower() for r in Role if r.name and self.roles & r]

    def active_nodes(self) -> list[NodeEntry]:
        return [n for n in self.nodes if n.status == NodeStatus.ACTIVE.name]

    def to_json(self) -> dict[str, Any]:
        return {
            "orgId": hex32(self.org_id),
            "name": self.name,
            "roles": self.role_names,
            "status": self.status,
            "admin": self.admin,
            "nodes": [n.to_json() for n in self.nodes],
        }


def organisations(consortium: ConsortiumClient, from_block: int = 0) -> list[OrgEntry]:
    """Every organisation ever proposed, in the order it was first proposed."""
    reader = EventReader(
        consortium.chain, [Source("Consortium", consortium.address, abi("Consortium"))]
    )
    names: dict[bytes, str] = {}
    node_orgs: dict[str, bytes] = {}
    for event in reader.read(from_block):
        if event.name == "OrgProposed":
            names.setdefault(bytes(event.args["orgId"]), str(event.args["name"]))
        elif event.name == "NodeRegistered":
            node_orgs[str(event.args["node"])] = bytes(event.args["orgId"])
    entries = []
    for org_id, name in names.items():
        status = consortium.org_status(org_id)
        nodes = []
        for address, owner in node_orgs.items():
            if owner != org_id:
                continue
            info = consortium.node_info(address)
            nodes.append(NodeEntry(address, info.status.name, info.endpoint, info.tls_cert_sha256))
        entries.append(
            OrgEntry(
                org_id,
                consortium.org_name(org_id) or name,
                consortium.org_roles(org_id),
                status.name if status != OrgStatus.NONE else OrgStatus.PROPOSED.name,
                consortium.org_admin(org_id),
                tuple(nodes),
            )
        )
    return entries


def resolve_org(entries: list[OrgEntry], reference: str, field: str = "org") -> OrgEntry:
    """An organisation by its id (0x + 64 hex digits) or its exact name."""
    text = reference.strip()
    for entry in entries:
        if text.lower() == hex32(entry.org_id) or text == entry.name:
            return entry
    matches = [e for e in entries if e.name.casefold() == text.casefold()]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(repr(e.name) for e in entries) or "none"
    raise InvalidInput(field, f"no organisation named or with id {reference!r} (known: {known})")
