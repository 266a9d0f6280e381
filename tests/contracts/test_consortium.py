"""Consortium: deployment, admission / suspension / reinstatement by vote, and nodes.

Every mutating function is exercised on its happy path (views and events) and on every
revert the contract can produce, with the exact custom error and its decoded arguments.
The helpers at the top are shared by the other contract test modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address
from web3.types import TxReceipt

from ledger.artifacts import load_artifact
from ledger.clients.consortium import ConsortiumClient, NodeInfo, NodeStatus, OrgStatus
from ledger.deploy import GenesisMember, deploy
from ledger.errors import custom_error
from ledger.ids import InvalidInput, name_id
from ledger.roles import Role
from ledger.transactions import Sender
from tests.conftest import Consortium, Org

ZERO32 = bytes(32)
ZERO_ADDRESS = "0x" + "0" * 40
ADMIT, SUSPEND, REINSTATE = 0, 1, 2
PROVIDER, CONSUMER, COMPUTE, REGULATOR = (int(r) for r in Role)
ALL_ROLES = PROVIDER | CONSUMER | COMPUTE | REGULATOR


# ---------------------------------------------------------------------------- helpers


def normalised(arguments: dict[str, Any]) -> dict[str, Any]:
    """Decoded revert arguments with address strings compared in checksummed form.

    Whether the decoder itself checksums addresses is asserted once, in
    test_revert_decoding.py; here only the values matter.
    """
    return {
        k: to_checksum_address(v) if isinstance(v, str) and is_hex_address(v) else v
        for k, v in arguments.items()
    }


def reverts(error: str, fn: Callable[..., object], *args: object) -> dict[str, Any]:
    """Call `fn(*args)`, require it to raise custom error `error`, return its arguments."""
    with pytest.raises(custom_error(error)) as exc:
        fn(*args)
    assert type(exc.value).__name__ == error
    return normalised(exc.value.arguments)


def last_receipt(consortium: Consortium) -> TxReceipt:
    """Receipt of the last transaction mined (eth-tester mines one per block)."""
    w3 = consortium.chain.w3
    block = w3.eth.get_block("latest")
    return w3.eth.get_transaction_receipt(block["transactions"][-1])


def org_clients(consortium: Consortium, name: str, org_id: bytes, roles: int) -> Org:
    admin, node = consortium.new_funded_account(), consortium.new_funded_account()
    return Org(
        name,
        org_id,
        roles,
        admin,
        node,
        consortium.clients_for(admin),
        consortium.clients_for(node),
    )


def propose(consortium: Consortium, name: str, roles: int = CONSUMER) -> tuple[Org, bytes]:
    """bank-a proposes a new organisation (one vote); returns it and the proposal id."""
    org = org_clients(consortium, name, name_id("org", name), roles)
    proposer = consortium.orgs["bank-a"].clients.consortium
    return org, proposer.propose_member(org.org_id, name, roles, org.admin.address)


def admit(consortium: Consortium, name: str, roles: int = CONSUMER, node: bool = True) -> Org:
    """A new Active organisation (proposed by bank-a, seconded by bank-b), with a node."""
    org, proposal = propose(consortium, name, roles)
    consortium.orgs["bank-b"].clients.consortium.vote(proposal)
    assert org.clients.consortium.org_status(org.org_id) == OrgStatus.ACTIVE
    if node:
        org.clients.consortium.register_node(
            org.node.address, f"{name}.example:7000", name_id("cert", name)
        )
    return org


def suspend(consortium: Consortium, target: str, *voters: str) -> bytes:
    """Suspend `target`: the first voter proposes, the others vote."""
    first, *rest = voters
    orgs = consortium.orgs
    proposal = orgs[first].clients.consortium.propose_suspension(orgs[target].org_id)
    for voter in rest:
        orgs[voter].clients.consortium.vote(proposal)
    assert orgs[first].clients.consortium.org_status(orgs[target].org_id) == OrgStatus.SUSPENDED
    return proposal


# ------------------------------------------------------------------- deployment


def _deploy_raw(consortium: Consortium, threshold: int, genesis: list[tuple[Any, ...]]) -> Any:
    artifact = load_artifact("Consortium")
    factory = consortium.chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    return Sender(consortium.chain, consortium.deployer).transact(
        factory.constructor(threshold, genesis)
    )


def _genesis(consortium: Consortium, n: int) -> list[tuple[Any, ...]]:
    return [
        (name_id("org", f"g{i}"), f"g{i}", PROVIDER, consortium.new_funded_account().address)
        for i in range(n)
    ]


@pytest.mark.parametrize("threshold", [1, 100])
def test_constructor_sets_threshold_and_admits_genesis(
    consortium: Consortium, threshold: int
) -> None:
    genesis = _genesis(consortium, 2)
    genesis[1] = (genesis[1][0], genesis[1][1], ALL_ROLES, genesis[1][3])
    receipt = _deploy_raw(consortium, threshold, genesis)
    client = ConsortiumClient(consortium.chain, receipt["contractAddress"])
    assert client.events_in(receipt, "ThresholdSet") == [{"thresholdPercent": threshold}]
    assert client.events_in(receipt, "OrgProposed") == [
        {"orgId": g[0], "name": g[1], "roles": g[2], "admin": g[3]} for g in genesis
    ]
    assert client.events_in(receipt, "OrgAdmitted") == [{"orgId": g[0]} for g in genesis]
    assert client.events_in(receipt, "ProposalCreated") == []
    assert client.threshold_percent() == threshold
    assert client.active_org_count() == 2
    for org_id, name, roles, admin in genesis:
        assert client.org_status(org_id) == OrgStatus.ACTIVE
        assert client.org_name(org_id) == name
        assert client.org_roles(org_id) == roles
        assert client.org_admin(org_id) == admin
        assert client.org_of_account(admin) == org_id
        assert client.active_admin_org(admin) == org_id


def _bad_genesis(consortium: Consortium, case: str) -> tuple[int, list[tuple[Any, ...]], dict]:
    g = _genesis(consortium, 2)
    (id0, name0, roles0, admin0), (id1, name1, roles1, _admin1) = g
    cases: dict[str, tuple[int, list[tuple[Any, ...]], dict]] = {
        "threshold-0": (0, g, {"thresholdPercent": 0}),
        "threshold-101": (101, g, {"thresholdPercent": 101}),
        "threshold-255": (255, g, {"thresholdPercent": 255}),
        "empty": (50, [], {}),
        "zero-org-id": (50, [g[0], (ZERO32, name1, roles1, _admin1)], {}),
        "roles-0": (50, [g[0], (id1, name1, 0, _admin1)], {"roles": 0}),
        "roles-16": (50, [g[0], (id1, name1, 16, _admin1)], {"roles": 16}),
        "roles-17": (50, [g[0], (id1, name1, 17, _admin1)], {"roles": 17}),
        "duplicate-org": (50, [g[0], (id0, name1, roles1, _admin1)], {"orgId": id0}),
        "duplicate-admin": (50, [g[0], (id1, name1, roles1, admin0)], {"account": admin0}),
        "zero-admin": (50, [(id0, name0, roles0, ZERO_ADDRESS)], {"account": ZERO_ADDRESS}),
    }
    return cases[case]


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("threshold-0", "InvalidThreshold"),
        ("threshold-101", "InvalidThreshold"),
        ("threshold-255", "InvalidThreshold"),
        ("empty", "NoGenesisMembers"),
        ("zero-org-id", "InvalidOrgId"),
        ("roles-0", "InvalidRoles"),
        ("roles-16", "InvalidRoles"),
        ("roles-17", "InvalidRoles"),
        ("duplicate-org", "OrgAlreadyExists"),
        ("duplicate-admin", "AccountAlreadyBound"),
        ("zero-admin", "AccountAlreadyBound"),
    ],
)
def test_constructor_reverts(consortium: Consortium, case: str, error: str) -> None:
    threshold, genesis, expected = _bad_genesis(consortium, case)
    block = consortium.chain.head()
    assert reverts(error, _deploy_raw, consortium, threshold, genesis) == expected
    assert consortium.chain.head() == block  # estimation failed: nothing was mined


@pytest.mark.parametrize(
    ("threshold", "members", "field"),
    [
        (0, 1, "threshold_percent"),
        (101, 1, "threshold_percent"),
        (50, 0, "genesis"),
    ],
)
def test_deploy_validates_before_any_transaction(
    consortium: Consortium, threshold: int, members: int, field: str
) -> None:
    genesis = [GenesisMember(g[0], g[1], g[2], g[3]) for g in _genesis(consortium, members)]
    block = consortium.chain.head()
    with pytest.raises(InvalidInput) as exc:
        deploy(consortium.chain, Sender(consortium.chain, consortium.deployer), threshold, genesis)
    assert exc.value.field == field
    assert consortium.chain.head() == block


# -------------------------------------------------------------------------- views


def test_genesis_state(consortium: Consortium) -> None:
    c = consortium.orgs["bank-a"].clients.consortium
    assert c.threshold_percent() == 50
    assert c.active_org_count() == 3
    for org in consortium.orgs.values():
        assert c.org_status(org.org_id) == OrgStatus.ACTIVE
        assert c.is_active_org(org.org_id)
        assert c.org_name(org.org_id) == org.name
        assert c.org_roles(org.org_id) == org.roles
        assert c.org_admin(org.org_id) == org.admin.address
        assert c.org_of_account(org.admin.address) == org.org_id
        assert c.org_of_account(org.node.address) == org.org_id
        assert c.node_info(org.node.address) == NodeInfo(
            org.org_id,
            NodeStatus.ACTIVE,
            f"{org.name}.example:7000",
            name_id("cert", org.name),
            ZERO32,
        )
        assert c.is_active_node(org.node.address)
        assert not c.is_active_node(org.admin.address)
        assert c.node_org(org.node.address) == org.org_id
        assert c.node_org(org.admin.address) == ZERO32
        assert c.active_member_org(org.admin.address) == org.org_id
        assert c.active_member_org(org.node.address) == org.org_id
        assert c.active_admin_org(org.admin.address) == org.org_id
        assert c.active_admin_org(org.node.address) == ZERO32
        assert c.active_node_org(org.node.address) == org.org_id
        assert c.active_node_org(org.admin.address) == ZERO32


def test_views_of_unknown_ids(consortium: Consortium) -> None:
    c = consortium.orgs["bank-a"].clients.consortium
    unknown, stranger = name_id("org", "nobody"), consortium.new_funded_account().address
    assert c.org_status(unknown) == OrgStatus.NONE
    assert not c.is_active_org(unknown)
    assert (c.org_name(unknown), c.org_roles(unknown), c.org_admin(unknown)) == (
        "",
        0,
        ZERO_ADDRESS,
    )
    assert c.org_of_account(stranger) == ZERO32
    assert c.node_info(stranger) == NodeInfo(ZERO32, NodeStatus.NONE, "", ZERO32, ZERO32)
    assert not c.is_active_node(stranger)
    assert c.node_org(stranger) == ZERO32
    assert c.active_admin_org(stranger) == ZERO32
    assert c.active_node_org(stranger) == ZERO32
    assert reverts("NotActiveMember", c.active_member_org, stranger) == {"account": stranger}
    assert c.proposal_votes(unknown) == 0
    assert not c.proposal_executed(unknown)
    assert not c.has_voted(unknown, consortium.orgs["bank-a"].org_id)


def test_has_role_requires_every_bit(consortium: Consortium) -> None:
    c = consortium.orgs["bank-a"].clients.consortium
    bank, regulator = consortium.orgs["bank-a"].org_id, consortium.orgs["regulator"].org_id
    assert [c.has_role(bank, r) for r in (PROVIDER, CONSUMER, COMPUTE, REGULATOR)] == [
        True,
        True,
        False,
        False,
    ]
    assert c.has_role(bank, PROVIDER | CONSUMER)
    assert not c.has_role(bank, PROVIDER | COMPUTE)
    assert not c.has_role(bank, 0)
    assert c.has_role(regulator, REGULATOR | PROVIDER)
    assert not c.has_role(regulator, CONSUMER)
    assert not c.has_role(name_id("org", "nobody"), PROVIDER)
    suspend(consortium, "bank-b", "bank-a")  # roles hold whatever the status
    assert c.has_role(consortium.orgs["bank-b"].org_id, PROVIDER | CONSUMER)


# -------------------------------------------------------------------- admission


def test_admission_needs_threshold_votes(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    new, proposal = propose(consortium, "bank-d", CONSUMER | COMPUTE)
    receipt = last_receipt(consortium)
    assert c.events_in(receipt, "ProposalCreated") == [
        {"proposalId": proposal, "action": ADMIT, "orgId": new.org_id, "proposerOrg": a.org_id}
    ]
    assert c.events_in(receipt, "OrgProposed") == [
        {
            "orgId": new.org_id,
            "name": "bank-d",
            "roles": CONSUMER | COMPUTE,
            "admin": new.admin.address,
        }
    ]
    # 3 active organisations at 50%: ceil(1.5) = 2 votes needed, 1 is not enough
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
    ]
    assert c.events_in(receipt, "ProposalExecuted") == []
    assert c.events_in(receipt, "OrgAdmitted") == []
    assert c.org_status(new.org_id) == OrgStatus.PROPOSED
    assert not c.is_active_org(new.org_id)
    assert c.active_org_count() == 3
    assert c.proposal_votes(proposal) == 1
    assert not c.proposal_executed(proposal)
    assert c.has_voted(proposal, a.org_id)
    assert not c.has_voted(proposal, b.org_id)
    assert c.org_name(new.org_id) == "bank-d"
    assert c.org_roles(new.org_id) == CONSUMER | COMPUTE
    assert c.org_admin(new.org_id) == new.admin.address
    assert c.org_of_account(new.admin.address) == new.org_id  # bound at once
    assert c.active_admin_org(new.admin.address) == ZERO32
    assert reverts("NotActiveMember", c.active_member_org, new.admin.address) == {
        "account": new.admin.address
    }
    # a proposed organisation's admin has no rights yet
    node = new.node.address
    assert reverts(
        "NotActiveMemberAdmin", new.clients.consortium.register_node, node, "d:1", name_id("c", "d")
    ) == {"account": new.admin.address}

    receipt = b.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": b.org_id, "votes": 2, "required": 2}
    ]
    assert c.events_in(receipt, "ProposalExecuted") == [{"proposalId": proposal}]
    assert c.events_in(receipt, "OrgAdmitted") == [{"orgId": new.org_id}]
    assert c.org_status(new.org_id) == OrgStatus.ACTIVE
    assert c.is_active_org(new.org_id)
    assert c.active_org_count() == 4
    assert c.proposal_votes(proposal) == 2
    assert c.proposal_executed(proposal)
    assert c.has_voted(proposal, b.org_id)
    assert c.active_admin_org(new.admin.address) == new.org_id
    new.clients.consortium.register_node(node, "d.example:1", name_id("cert", "d"))
    assert c.is_active_node(node)


def test_quorum_is_computed_at_vote_time_and_votes_stay(consortium: Consortium) -> None:
    a, reg = consortium.orgs["bank-a"], consortium.orgs["regulator"]
    c = a.clients.consortium
    new, proposal = propose(consortium, "bank-d")  # bank-a's vote: 1 of 2
    suspend(consortium, "bank-a", "bank-b")  # 2 eligible of 3 active -> 1 vote suffices
    assert c.active_org_count() == 2
    receipt = reg.clients.consortium.vote(proposal)
    # bank-a's earlier vote still counts; the bar is now ceil(2 * 50%) = 1
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": reg.org_id, "votes": 2, "required": 1}
    ]
    assert c.org_status(new.org_id) == OrgStatus.ACTIVE
    assert c.active_org_count() == 3


@pytest.mark.parametrize("caller", ["outsider", "node", "proposed-admin", "suspended-admin"])
def test_propose_member_requires_active_admin(consortium: Consortium, caller: str) -> None:
    if caller == "outsider":
        account = consortium.new_funded_account()
    elif caller == "node":
        account = consortium.orgs["bank-a"].node
    elif caller == "proposed-admin":
        account = propose(consortium, "bank-d")[0].admin
    else:
        suspend(consortium, "bank-b", "bank-a")
        account = consortium.orgs["bank-b"].admin
    c = consortium.clients_for(account).consortium
    target = consortium.new_funded_account().address
    assert reverts(
        "NotActiveMemberAdmin", c.propose_member, name_id("org", "x"), "x", CONSUMER, target
    ) == {"account": account.address}
    assert c.org_status(name_id("org", "x")) == OrgStatus.NONE


def test_propose_member_argument_checks(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    fresh = consortium.new_funded_account().address
    new_id = name_id("org", "bank-d")
    assert reverts("InvalidOrgId", c.propose_member, ZERO32, "x", CONSUMER, fresh) == {}
    assert reverts("OrgAlreadyExists", c.propose_member, b.org_id, "x", CONSUMER, fresh) == {
        "orgId": b.org_id
    }
    for roles in (0, 16, 0x1F, 0xFF):
        assert reverts("InvalidRoles", c.propose_member, new_id, "x", roles, fresh) == {
            "roles": roles
        }
    for bound in (ZERO_ADDRESS, a.admin.address, b.admin.address, b.node.address):
        assert reverts("AccountAlreadyBound", c.propose_member, new_id, "x", CONSUMER, bound) == {
            "account": bound
        }
    assert c.org_status(new_id) == OrgStatus.NONE
    # a Proposed id is taken too, as is its admin account
    pending, _ = propose(consortium, "bank-d")
    assert reverts("OrgAlreadyExists", c.propose_member, new_id, "x", CONSUMER, fresh) == {
        "orgId": new_id
    }
    other = name_id("org", "bank-e")
    assert reverts(
        "AccountAlreadyBound", c.propose_member, other, "e", CONSUMER, pending.admin.address
    ) == {"account": pending.admin.address}


# ------------------------------------------------------------------------- voting


def test_vote_reverts(consortium: Consortium) -> None:
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    new, proposal = propose(consortium, "bank-d")
    unknown = name_id("proposal", "nope")
    assert reverts("UnknownProposal", b.clients.consortium.vote, unknown) == {"proposalId": unknown}
    assert reverts("AlreadyVoted", a.clients.consortium.vote, proposal) == {
        "proposalId": proposal,
        "orgId": a.org_id,
    }
    for account in (consortium.new_funded_account(), b.node, new.admin):
        assert reverts(
            "NotActiveMemberAdmin", consortium.clients_for(account).consortium.vote, proposal
        ) == {"account": account.address}
    assert a.clients.consortium.proposal_votes(proposal) == 1
    b.clients.consortium.vote(proposal)
    for voter in (reg, a, b):  # executed comes before "already voted"
        assert reverts("ProposalAlreadyExecuted", voter.clients.consortium.vote, proposal) == {
            "proposalId": proposal
        }
    assert a.clients.consortium.proposal_votes(proposal) == 2


# ---------------------------------------------------------------------- suspension


def test_suspension_excludes_target_from_count(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    proposal = c.propose_suspension(b.org_id)
    receipt = last_receipt(consortium)
    assert c.events_in(receipt, "ProposalCreated") == [
        {"proposalId": proposal, "action": SUSPEND, "orgId": b.org_id, "proposerOrg": a.org_id}
    ]
    # eligible voters: 3 active minus the target = 2, so ceil(2 * 50%) = 1 (not 2)
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 1}
    ]
    assert c.events_in(receipt, "ProposalExecuted") == [{"proposalId": proposal}]
    assert c.events_in(receipt, "OrgSuspended") == [{"orgId": b.org_id}]
    assert c.org_status(b.org_id) == OrgStatus.SUSPENDED
    assert not c.is_active_org(b.org_id)
    assert c.active_org_count() == 2
    assert c.proposal_executed(proposal)


def test_target_cannot_vote_on_its_suspension(consortium: Consortium) -> None:
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    assert reverts(
        "CannotVoteOnOwnSuspension", b.clients.consortium.propose_suspension, b.org_id
    ) == {"orgId": b.org_id}
    admit(consortium, "bank-d")  # 4 active: a suspension needs ceil(3 * 50%) = 2 votes
    c = a.clients.consortium
    proposal = c.propose_suspension(b.org_id)
    assert c.events_in(last_receipt(consortium), "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
    ]
    assert c.org_status(b.org_id) == OrgStatus.ACTIVE
    assert reverts("CannotVoteOnOwnSuspension", b.clients.consortium.vote, proposal) == {
        "orgId": b.org_id
    }
    assert not c.has_voted(proposal, b.org_id)
    receipt = reg.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": reg.org_id, "votes": 2, "required": 2}
    ]
    assert c.events_in(receipt, "OrgSuspended") == [{"orgId": b.org_id}]
    assert c.active_org_count() == 3


def test_propose_suspension_reverts(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    pending, _ = propose(consortium, "bank-d")
    unknown = name_id("org", "nobody")
    for target in (unknown, pending.org_id, ZERO32):
        assert reverts("OrgNotActive", c.propose_suspension, target) == {"orgId": target}
    assert reverts("CannotVoteOnOwnSuspension", c.propose_suspension, a.org_id) == {
        "orgId": a.org_id
    }
    for account in (consortium.new_funded_account(), a.node, pending.admin):
        assert reverts(
            "NotActiveMemberAdmin",
            consortium.clients_for(account).consortium.propose_suspension,
            b.org_id,
        ) == {"account": account.address}
    suspend(consortium, "bank-b", "bank-a")
    assert reverts("OrgNotActive", c.propose_suspension, b.org_id) == {"orgId": b.org_id}
    assert reverts("NotActiveMemberAdmin", b.clients.consortium.propose_suspension, a.org_id) == {
        "account": b.admin.address
    }


def test_suspended_org_admin_and_nodes_lose_rights(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c, bc = a.clients.consortium, b.clients.consortium
    pending, proposal = propose(consortium, "bank-d")
    suspend(consortium, "bank-b", "bank-a")
    assert not c.is_active_node(b.node.address)
    assert c.active_node_org(b.node.address) == ZERO32
    assert c.active_admin_org(b.admin.address) == ZERO32
    for account in (b.admin.address, b.node.address):
        assert reverts("NotActiveMember", c.active_member_org, account) == {"account": account}
    # the node's own record is untouched: only the organisation's status changed
    assert c.node_info(b.node.address).status == NodeStatus.ACTIVE
    assert c.node_org(b.node.address) == b.org_id
    who = {"account": b.admin.address}
    fresh = consortium.new_funded_account().address
    assert reverts("NotActiveMemberAdmin", bc.vote, proposal) == who
    assert (
        reverts(
            "NotActiveMemberAdmin", bc.propose_member, name_id("org", "x"), "x", CONSUMER, fresh
        )
        == who
    )
    assert reverts("NotActiveMemberAdmin", bc.propose_reinstatement, b.org_id) == who
    assert (
        reverts("NotActiveMemberAdmin", bc.register_node, fresh, "b:2", name_id("cert", "b2"))
        == who
    )
    assert (
        reverts(
            "NotActiveMemberAdmin", bc.update_node, b.node.address, "b:2", name_id("cert", "b2")
        )
        == who
    )
    assert c.org_status(pending.org_id) == OrgStatus.PROPOSED


# ------------------------------------------------------------------- reinstatement


def test_reinstatement_restores_rights(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    suspend(consortium, "bank-b", "bank-a")
    proposal = c.propose_reinstatement(b.org_id)
    receipt = last_receipt(consortium)
    assert c.events_in(receipt, "ProposalCreated") == [
        {"proposalId": proposal, "action": REINSTATE, "orgId": b.org_id, "proposerOrg": a.org_id}
    ]
    # 2 active organisations: ceil(2 * 50%) = 1 vote
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 1}
    ]
    assert c.events_in(receipt, "ProposalExecuted") == [{"proposalId": proposal}]
    assert c.events_in(receipt, "OrgReinstated") == [{"orgId": b.org_id}]
    assert c.org_status(b.org_id) == OrgStatus.ACTIVE
    assert c.active_org_count() == 3
    assert c.is_active_node(b.node.address)
    assert c.active_member_org(b.node.address) == b.org_id
    assert c.active_admin_org(b.admin.address) == b.org_id
    b.clients.consortium.update_node(b.node.address, "b.example:7001", name_id("cert", "b2"))
    assert c.node_info(b.node.address).endpoint == "b.example:7001"


def test_reinstatement_needs_threshold_votes(consortium: Consortium) -> None:
    d = admit(consortium, "bank-d")
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    suspend(consortium, "bank-b", "bank-a", "regulator")
    proposal = c.propose_reinstatement(b.org_id)
    assert c.events_in(last_receipt(consortium), "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
    ]
    assert c.org_status(b.org_id) == OrgStatus.SUSPENDED
    receipt = d.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "OrgReinstated") == [{"orgId": b.org_id}]
    assert c.active_org_count() == 4


def test_propose_reinstatement_reverts(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    c = a.clients.consortium
    pending, _ = propose(consortium, "bank-d")
    for target in (
        consortium.orgs["bank-b"].org_id,
        a.org_id,
        pending.org_id,
        name_id("org", "nobody"),
    ):
        assert reverts("OrgNotSuspended", c.propose_reinstatement, target) == {"orgId": target}
    suspend(consortium, "bank-b", "bank-a")
    for account in (consortium.new_funded_account(), a.node, pending.admin):
        assert reverts(
            "NotActiveMemberAdmin",
            consortium.clients_for(account).consortium.propose_reinstatement,
            consortium.orgs["bank-b"].org_id,
        ) == {"account": account.address}


def test_stale_proposals_are_refused(consortium: Consortium) -> None:
    admit(consortium, "bank-d")  # 4 active: suspensions and reinstatements need 2 votes
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    c, rc = a.clients.consortium, reg.clients.consortium
    first = c.propose_suspension(b.org_id)
    second = rc.propose_suspension(b.org_id)
    assert second != first
    rc.vote(first)  # executes: b suspended, 3 active
    assert c.org_status(b.org_id) == OrgStatus.SUSPENDED
    # the other suspension cannot be carried while b is not Active
    assert reverts("OrgNotActive", c.vote, second) == {"orgId": b.org_id}
    back = c.propose_reinstatement(b.org_id)
    again = rc.propose_reinstatement(b.org_id)
    assert reverts("AlreadyVoted", rc.vote, again) == {"proposalId": again, "orgId": reg.org_id}
    rc.vote(back)  # 2 of ceil(3 * 50%) = 2: b reinstated
    assert c.org_status(b.org_id) == OrgStatus.ACTIVE
    assert reverts("OrgNotSuspended", c.vote, again) == {"orgId": b.org_id}
    # b is Active again, but the old suspension was made two status changes ago
    assert reverts("ProposalSuperseded", c.vote, second) == {"proposalId": second}
    assert c.proposal_votes(second) == 1
    assert not c.proposal_executed(second)
    assert not c.has_voted(second, a.org_id)
    # the same for the pending reinstatement once b is suspended again
    suspend(consortium, "bank-b", "bank-a", "regulator")
    assert reverts("ProposalSuperseded", c.vote, again) == {"proposalId": again}
    assert reverts("ProposalAlreadyExecuted", c.vote, first) == {"proposalId": first}
    assert c.org_status(b.org_id) == OrgStatus.SUSPENDED


# --------------------------------------------------------------------------- nodes


def _new_node(consortium: Consortium) -> LocalAccount:
    return consortium.new_funded_account()


def test_register_node(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    c = a.clients.consortium
    node = _new_node(consortium)
    cert, tee = name_id("cert", "a2"), name_id("tee", "a2")
    receipt = c.register_node(node.address, "a2.example:7000", cert, tee)
    assert c.events_in(receipt, "NodeRegistered") == [
        {
            "node": node.address,
            "orgId": a.org_id,
            "endpoint": "a2.example:7000",
            "tlsCertSha256": cert,
            "teeMeasurement": tee,
        }
    ]
    assert c.node_info(node.address) == NodeInfo(
        a.org_id, NodeStatus.ACTIVE, "a2.example:7000", cert, tee
    )
    assert c.is_active_node(node.address)
    assert c.node_org(node.address) == a.org_id
    assert c.org_of_account(node.address) == a.org_id
    assert c.active_member_org(node.address) == a.org_id
    assert c.active_node_org(node.address) == a.org_id
    assert c.active_admin_org(node.address) == ZERO32
    plain = _new_node(consortium)
    receipt = c.register_node(plain.address, "a3.example:7000", cert)
    assert c.events_in(receipt, "NodeRegistered")[0]["teeMeasurement"] == ZERO32
    assert c.node_info(plain.address).tee_measurement == ZERO32


def test_register_node_endpoint_and_cert_checks(consortium: Consortium) -> None:
    c = consortium.orgs["bank-a"].clients.consortium
    cert = name_id("cert", "x")
    assert c.max_endpoint_length() == 256
    for endpoint in ("", "x" * 257, "é" * 129):  # length counts bytes: 129 x 2 = 258
        assert (
            reverts(
                "InvalidEndpoint", c.register_node, _new_node(consortium).address, endpoint, cert
            )
            == {}
        )
    assert (
        reverts("InvalidCertDigest", c.register_node, _new_node(consortium).address, "x:1", ZERO32)
        == {}
    )
    for endpoint in ("x" * 256, "é" * 128, "h"):
        node = _new_node(consortium).address
        c.register_node(node, endpoint, cert)
        assert c.node_info(node).endpoint == endpoint


def test_register_node_account_and_caller_checks(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    cert = name_id("cert", "x")
    pending, _ = propose(consortium, "bank-d")
    revoked = _new_node(consortium).address
    c.register_node(revoked, "r:1", cert)
    c.revoke_node(revoked)
    for bound in (
        ZERO_ADDRESS,
        a.admin.address,
        a.node.address,
        b.admin.address,
        b.node.address,
        pending.admin.address,
        revoked,
    ):
        assert reverts("AccountAlreadyBound", c.register_node, bound, "x:1", cert) == {
            "account": bound
        }
    fresh = _new_node(consortium).address
    for account in (consortium.new_funded_account(), a.node, pending.admin):
        assert reverts(
            "NotActiveMemberAdmin",
            consortium.clients_for(account).consortium.register_node,
            fresh,
            "x:1",
            cert,
        ) == {"account": account.address}
    assert c.node_info(fresh).status == NodeStatus.NONE
    assert c.org_of_account(fresh) == ZERO32


def test_update_node(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    c = a.clients.consortium
    cert, tee = name_id("cert", "a-new"), name_id("tee", "a-new")
    receipt = c.update_node(a.node.address, "a.example:7443", cert, tee)
    assert c.events_in(receipt, "NodeUpdated") == [
        {
            "node": a.node.address,
            "orgId": a.org_id,
            "endpoint": "a.example:7443",
            "tlsCertSha256": cert,
            "teeMeasurement": tee,
        }
    ]
    assert c.node_info(a.node.address) == NodeInfo(
        a.org_id, NodeStatus.ACTIVE, "a.example:7443", cert, tee
    )
    receipt = c.update_node(a.node.address, "a.example:7444", cert)  # measurement cleared
    assert c.events_in(receipt, "NodeUpdated")[0]["teeMeasurement"] == ZERO32
    assert c.node_info(a.node.address) == NodeInfo(
        a.org_id, NodeStatus.ACTIVE, "a.example:7444", cert, ZERO32
    )
    assert c.is_active_node(a.node.address)


def test_update_node_reverts(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    cert = name_id("cert", "x")
    assert reverts("NotNodeOwner", c.update_node, b.node.address, "x:1", cert) == {
        "node": b.node.address,
        "orgId": a.org_id,
    }
    revoked = _new_node(consortium).address
    c.register_node(revoked, "r:1", cert)
    c.revoke_node(revoked)
    for node in (_new_node(consortium).address, a.admin.address, revoked, ZERO_ADDRESS):
        assert reverts("NodeNotActive", c.update_node, node, "x:1", cert) == {"node": node}
    for endpoint in ("", "x" * 257):
        assert reverts("InvalidEndpoint", c.update_node, a.node.address, endpoint, cert) == {}
    assert reverts("InvalidCertDigest", c.update_node, a.node.address, "x:1", ZERO32) == {}
    for account in (consortium.new_funded_account(), a.node):
        assert reverts(
            "NotActiveMemberAdmin",
            consortium.clients_for(account).consortium.update_node,
            a.node.address,
            "x:1",
            cert,
        ) == {"account": account.address}
    assert c.node_info(a.node.address).endpoint == "bank-a.example:7000"


def test_revoke_node(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    c = a.clients.consortium
    receipt = c.revoke_node(a.node.address)
    assert c.events_in(receipt, "NodeRevoked") == [{"node": a.node.address, "orgId": a.org_id}]
    info = c.node_info(a.node.address)
    assert info == NodeInfo(
        a.org_id, NodeStatus.REVOKED, "bank-a.example:7000", name_id("cert", "bank-a"), ZERO32
    )
    assert not c.is_active_node(a.node.address)
    assert c.active_node_org(a.node.address) == ZERO32
    assert c.node_org(a.node.address) == a.org_id  # history is kept
    assert c.org_of_account(a.node.address) == a.org_id
    assert reverts("NotActiveMember", c.active_member_org, a.node.address) == {
        "account": a.node.address
    }
    # revocation is final
    assert reverts("NodeNotActive", c.revoke_node, a.node.address) == {"node": a.node.address}
    assert reverts(
        "AccountAlreadyBound", c.register_node, a.node.address, "x:1", name_id("cert", "x")
    ) == {"account": a.node.address}


def test_revoke_node_reverts(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    assert reverts("NotNodeOwner", c.revoke_node, b.node.address) == {
        "node": b.node.address,
        "orgId": a.org_id,
    }
    for node in (_new_node(consortium).address, a.admin.address, ZERO_ADDRESS):
        assert reverts("NodeNotActive", c.revoke_node, node) == {"node": node}
    pending, _ = propose(consortium, "bank-d")
    for account in (consortium.new_funded_account(), a.node, pending.admin):
        assert reverts(
            "NotActiveMemberAdmin",
            consortium.clients_for(account).consortium.revoke_node,
            a.node.address,
        ) == {"account": account.address}
    assert c.is_active_node(a.node.address)
    assert c.is_active_node(b.node.address)


def test_suspended_org_may_still_revoke_its_nodes(consortium: Consortium) -> None:
    b = consortium.orgs["bank-b"]
    c = consortium.orgs["bank-a"].clients.consortium
    suspend(consortium, "bank-b", "bank-a")
    receipt = b.clients.consortium.revoke_node(b.node.address)
    assert c.events_in(receipt, "NodeRevoked") == [{"node": b.node.address, "orgId": b.org_id}]
    assert c.node_info(b.node.address).status == NodeStatus.REVOKED
    c.propose_reinstatement(b.org_id)
    assert c.org_status(b.org_id) == OrgStatus.ACTIVE
    assert not c.is_active_node(b.node.address)  # reinstatement does not revive it
