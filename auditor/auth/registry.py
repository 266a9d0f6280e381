"""Who may sign in: read from the index tables, never from the request.

A key is registered when it is, at the index's current block,
- the admin of an organisation (the ``admin`` of its latest ``OrgProposed`` row) whose
  latest status is ``active``, or
- a node whose latest record is not ``revoked``, of an organisation whose latest status
  is ``active``.
That is the rule ``Consortium.activeMemberOrg`` applies on chain, evaluated on the
index so that sign-in needs no chain connection. A regulator is a member whose
organisation's roles include ``Role.REGULATOR``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from auditor.index import schema
from ledger.roles import Role


@dataclass(frozen=True)
class Member:
    """A registered key and the organisation it speaks for."""

    org_id: bytes
    org_name: str
    roles: int
    kind: str  # "admin" or "node"

    @property
    def is_regulator(self) -> bool:
        return bool(self.roles & Role.REGULATOR)


def lookup(conn: Connection, address: bytes) -> Member | None:
    """The organisation ``address`` (20 raw bytes) may act for now, or None."""
    if len(address) != 20:
        raise ValueError("address must be 20 raw bytes")
    for org_id in _orgs_administered(conn, address):
        member = _active_org(conn, org_id, "admin", address)
        if member is not None:
            return member
    node = _latest_node_record(conn, address)
    if node is not None and node[1] != "revoked":
        return _active_org(conn, node[0], "node", None)
    return None


def _orgs_administered(conn: Connection, address: bytes) -> list[bytes]:
    o = schema.organisations
    rows = conn.execute(select(o.c.org_id).where(o.c.admin == address).distinct()).scalars()
    return [bytes(r) for r in rows]


def _latest_node_record(conn: Connection, address: bytes) -> tuple[bytes, str] | None:
    n = schema.node_records
    row = conn.execute(
        select(n.c.org_id, n.c.change)
        .where(n.c.node == address)
        .order_by(n.c.block_number.desc(), n.c.log_index.desc())
        .limit(1)
    ).first()
    return None if row is None else (bytes(row[0]), str(row[1]))


def _active_org(conn: Connection, org_id: bytes, kind: str, admin: bytes | None) -> Member | None:
    """The org as a Member if its latest status is active (and, for an admin, ``admin``
    is still its admin in the latest proposal of it)."""
    o, h = schema.organisations, schema.status_history
    org = conn.execute(
        select(o.c.name, o.c.roles, o.c.admin)
        .where(o.c.org_id == org_id)
        .order_by(o.c.block_number.desc(), o.c.log_index.desc())
        .limit(1)
    ).first()
    if org is None or (admin is not None and bytes(org[2]) != admin):
        return None
    status = conn.execute(
        select(h.c.status)
        .where(h.c.entity == "org", h.c.entity_id == org_id)
        .order_by(h.c.block_number.desc(), h.c.log_index.desc())
        .limit(1)
    ).scalar()
    if status != "active":
        return None
    return Member(org_id=org_id, org_name=str(org[0]), roles=int(org[1]), kind=kind)
