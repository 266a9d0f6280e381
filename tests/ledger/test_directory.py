"""The organisation directory: names to ids and nodes, from the chain alone."""

from __future__ import annotations

import pytest

from ledger.directory import organisations, resolve_org
from ledger.ids import InvalidInput, hex32
from tests.conftest import Consortium


def test_lists_every_genesis_org_with_roles_status_and_nodes(consortium: Consortium) -> None:
    entries = organisations(consortium.orgs["bank-a"].clients.consortium)
    assert [e.name for e in entries] == ["bank-a", "bank-b", "regulator"]
    for entry in entries:
        org = consortium.orgs[entry.name]
        assert entry.org_id == org.org_id
        assert entry.status == "ACTIVE"
        assert entry.admin.lower() == org.admin.address.lower()
        assert [n.address.lower() for n in entry.active_nodes()] == [org.node.address.lower()]
    assert entries[2].role_names == ["provider", "regulator"]


def test_revoked_node_is_listed_as_revoked(consortium: Consortium) -> None:
    org = consortium.orgs["bank-b"]
    org.clients.consortium.revoke_node(org.node.address)
    entry = resolve_org(organisations(org.clients.consortium), "bank-b")
    assert [n.status for n in entry.nodes] == ["REVOKED"]
    assert entry.active_nodes() == []


def test_resolves_by_name_id_or_case_insensitive_name(consortium: Consortium) -> None:
    entries = organisations(consortium.orgs["bank-a"].clients.consortium)
    org_id = consortium.orgs["regulator"].org_id
    assert resolve_org(entries, "regulator").org_id == org_id
    assert resolve_org(entries, hex32(org_id)).org_id == org_id
    assert resolve_org(entries, "REGULATOR").org_id == org_id


def test_unknown_name_lists_the_known_ones(consortium: Consortium) -> None:
    entries = organisations(consortium.orgs["bank-a"].clients.consortium)
    with pytest.raises(InvalidInput, match="bank-a") as raised:
        resolve_org(entries, "Bank Z", "granteeOrg")
    assert raised.value.field == "granteeOrg"
