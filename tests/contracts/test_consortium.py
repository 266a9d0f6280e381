"""Consortium: deployment, admission / suspension / reinstatement by vote, and nodes.

Every mutating function is exercised on its happy path (views and events) and on every
revert the contract can produce, with the exact custom error and its decoded arguments.
The helpers at the top are shared by the other contract test modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address
from web3.types import TxReceipt

from ledger.artifacts import load_artifact
from ledger.clients import Clients
from ledger.clients.consortium import (
    Ballot,
    ConsortiumClient,
    NodeInfo,
    NodeStatus,
    OrgStatus,
    ProposalState,
)
from ledger.clients.consortium import Governance as ConsortiumGovernance
from ledger.deploy import DAY, MAX_DURATION, GenesisMember, Governance, deploy
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
WEEK = 7 * DAY


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


def _complete(
    consortium: Consortium, proposal: bytes, target: str, voters: tuple[str, ...]
) -> None:
    """`voters[1:]` vote, then other members (never the target) until the proposal executed."""
    orgs = consortium.orgs
    c = orgs[voters[0]].clients.consortium
    for name in [*voters[1:], *(n for n in orgs if n != target and n not in voters)]:
        if c.proposal_executed(proposal):
            return
        orgs[name].clients.consortium.vote(proposal)
    assert c.proposal_executed(proposal)


def suspend(consortium: Consortium, target: str, *voters: str) -> bytes:
    """Suspend `target`: the first voter proposes, the others vote, then any other member
    votes until the quorum (which never counts fewer than two organisations) is reached."""
    orgs = consortium.orgs
    proposal = orgs[voters[0]].clients.consortium.propose_suspension(orgs[target].org_id)
    _complete(consortium, proposal, target, voters)
    assert orgs[voters[0]].clients.consortium.org_status(orgs[target].org_id) == OrgStatus.SUSPENDED
    return proposal


def reinstate(consortium: Consortium, target: str, *voters: str) -> bytes:
    """Reinstate `target` like `suspend` suspends it."""
    orgs = consortium.orgs
    proposal = orgs[voters[0]].clients.consortium.propose_reinstatement(orgs[target].org_id)
    _complete(consortium, proposal, target, voters)
    assert orgs[voters[0]].clients.consortium.org_status(orgs[target].org_id) == OrgStatus.ACTIVE
    return proposal


def now(consortium: Consortium) -> int:
    return int(consortium.chain.w3.eth.get_block("latest")["timestamp"])


def travel_to(consortium: Consortium, timestamp: int) -> None:
    """The next mined block carries `timestamp` (views read the latest block: mine one)."""
    consortium.chain.w3.provider.ethereum_tester.time_travel(timestamp)  # type: ignore[attr-defined]


@dataclass
class Governed:
    """A second deployment on the session chain with a timelock, reusing the genesis admins."""

    clients: dict[str, Clients]
    org_ids: dict[str, bytes]

    def consortium(self, name: str) -> ConsortiumClient:
        return self.clients[name].consortium


def timelocked(
    consortium: Consortium, timelock: int = DAY, lifetime: int = WEEK, extra: int = 0
) -> Governed:
    """bank-a, bank-b, regulator (and `extra` more banks) at 50 %, minApprovals 2."""
    accounts = {name: org.admin for name, org in consortium.orgs.items()}
    roles = {name: org.roles for name, org in consortium.orgs.items()}
    for i in range(extra):
        accounts[f"bank-{i}"] = consortium.new_funded_account()
        roles[f"bank-{i}"] = PROVIDER
    genesis = [
        GenesisMember(name_id("org", n), n, roles[n], acct.address) for n, acct in accounts.items()
    ]
    deployment = deploy(
        consortium.chain,
        Sender(consortium.chain, consortium.deployer),
        Governance(50, 2, lifetime, timelock),
        genesis,
    )
    return Governed(
        {
            n: Clients.bind(consortium.chain, deployment, Sender(consortium.chain, acct))
            for n, acct in accounts.items()
        },
        {n: name_id("org", n) for n in accounts},
    )


# ------------------------------------------------------------------- deployment


def _deploy_raw(
    consortium: Consortium,
    threshold: int,
    genesis: list[tuple[Any, ...]],
    settings: tuple[int, int, int] = (2, WEEK, 0),
) -> Any:
    artifact = load_artifact("Consortium")
    factory = consortium.chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    return Sender(consortium.chain, consortium.deployer).transact(
        factory.constructor((threshold, *settings), genesis)
    )


def _genesis(consortium: Consortium, n: int) -> list[tuple[Any, ...]]:
    return [
        (name_id("org", f"g{i}"), f"g{i}", PROVIDER, consortium.new_funded_account().address)
        for i in range(n)
    ]


@pytest.mark.parametrize("threshold", [1, 100])
def test_constructor_sets_settings_and_admits_genesis(
    consortium: Consortium, threshold: int
) -> None:
    genesis = _genesis(consortium, 2)
    genesis[1] = (genesis[1][0], genesis[1][1], ALL_ROLES, genesis[1][3])
    receipt = _deploy_raw(consortium, threshold, genesis, (3, 3600, 60))
    client = ConsortiumClient(consortium.chain, receipt["contractAddress"])
    assert client.events_in(receipt, "GovernanceSettings") == [
        {
            "thresholdPercent": threshold,
            "minApprovals": 3,
            "proposalLifetime": 3600,
            "timelockDelay": 60,
        }
    ]
    assert client.events_in(receipt, "OrgProposed") == [
        {"orgId": g[0], "name": g[1], "roles": g[2], "admin": g[3]} for g in genesis
    ]
    assert client.events_in(receipt, "OrgAdmitted") == [{"orgId": g[0]} for g in genesis]
    assert client.events_in(receipt, "ProposalCreated") == []
    assert client.threshold_percent() == threshold
    assert client.governance() == ConsortiumGovernance(threshold, 3, 3600, 60)
    assert client.active_org_count() == client.member_count() == 2
    assert client.required_votes() == 3  # minApprovals dominates: 2 members can decide nothing
    for org_id, name, roles, admin in genesis:
        assert client.org_status(org_id) == OrgStatus.ACTIVE
        assert client.org_name(org_id) == name
        assert client.org_roles(org_id) == roles
        assert client.org_admin(org_id) == admin
        assert client.org_of_account(admin) == org_id
        assert client.active_admin_org(admin) == org_id


def _bad_genesis(
    consortium: Consortium, case: str
) -> tuple[int, list[tuple[Any, ...]], tuple[int, int, int], dict[str, Any]]:
    g = _genesis(consortium, 2)
    (id0, name0, roles0, admin0), (id1, name1, roles1, _admin1) = g
    ok = (2, WEEK, 0)
    cases: dict[str, tuple[int, list[tuple[Any, ...]], tuple[int, int, int], dict[str, Any]]] = {
        "threshold-0": (0, g, ok, {"thresholdPercent": 0}),
        "threshold-101": (101, g, ok, {"thresholdPercent": 101}),
        "threshold-255": (255, g, ok, {"thresholdPercent": 255}),
        "min-approvals-0": (50, g, (0, WEEK, 0), {"minApprovals": 0}),
        "min-approvals-1": (50, g, (1, WEEK, 0), {"minApprovals": 1}),
        "lifetime-0": (50, g, (2, 0, 0), {"proposalLifetime": 0}),
        "lifetime-too-long": (
            50,
            g,
            (2, MAX_DURATION + 1, 0),
            {"proposalLifetime": MAX_DURATION + 1},
        ),
        "timelock-too-long": (
            50,
            g,
            (2, WEEK, MAX_DURATION + 1),
            {"timelockDelay": MAX_DURATION + 1},
        ),
        "empty": (50, [], ok, {}),
        "zero-org-id": (50, [g[0], (ZERO32, name1, roles1, _admin1)], ok, {}),
        "roles-0": (50, [g[0], (id1, name1, 0, _admin1)], ok, {"roles": 0}),
        "roles-16": (50, [g[0], (id1, name1, 16, _admin1)], ok, {"roles": 16}),
        "roles-17": (50, [g[0], (id1, name1, 17, _admin1)], ok, {"roles": 17}),
        "duplicate-org": (50, [g[0], (id0, name1, roles1, _admin1)], ok, {"orgId": id0}),
        "duplicate-admin": (50, [g[0], (id1, name1, roles1, admin0)], ok, {"account": admin0}),
        "zero-admin": (50, [(id0, name0, roles0, ZERO_ADDRESS)], ok, {"account": ZERO_ADDRESS}),
    }
    return cases[case]


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("threshold-0", "InvalidThreshold"),
        ("threshold-101", "InvalidThreshold"),
        ("threshold-255", "InvalidThreshold"),
        ("min-approvals-0", "InvalidMinApprovals"),
        ("min-approvals-1", "InvalidMinApprovals"),
        ("lifetime-0", "InvalidProposalLifetime"),
        ("lifetime-too-long", "InvalidProposalLifetime"),
        ("timelock-too-long", "InvalidTimelock"),
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
    threshold, genesis, settings, expected = _bad_genesis(consortium, case)
    block = consortium.chain.head()
    assert reverts(error, _deploy_raw, consortium, threshold, genesis, settings) == expected
    assert consortium.chain.head() == block  # estimation failed: nothing was mined


@pytest.mark.parametrize(
    ("governance", "members", "field"),
    [
        (0, 1, "threshold_percent"),
        (101, 1, "threshold_percent"),
        (Governance(min_approvals=1), 1, "min_approvals"),
        (Governance(proposal_lifetime_seconds=0), 1, "proposal_lifetime_seconds"),
        (Governance(timelock_seconds=-1), 1, "timelock_seconds"),
        (Governance(timelock_seconds=MAX_DURATION + 1), 1, "timelock_seconds"),
        (50, 0, "genesis"),
    ],
)
def test_deploy_validates_before_any_transaction(
    consortium: Consortium, governance: Governance | int, members: int, field: str
) -> None:
    genesis = [GenesisMember(g[0], g[1], g[2], g[3]) for g in _genesis(consortium, members)]
    block = consortium.chain.head()
    with pytest.raises(InvalidInput) as exc:
        deploy(consortium.chain, Sender(consortium.chain, consortium.deployer), governance, genesis)
    assert exc.value.field == field
    assert consortium.chain.head() == block


def test_deploy_defaults_are_the_recommended_settings() -> None:
    assert Governance() == Governance(67, 2, 7 * DAY, 2 * DAY)
    assert Governance.dev() == Governance(50, 2, 7 * DAY, 0)


# -------------------------------------------------------------------------- views


def test_genesis_state(consortium: Consortium) -> None:
    c = consortium.orgs["bank-a"].clients.consortium
    assert c.threshold_percent() == 50
    assert c.governance() == ConsortiumGovernance(50, 2, 7 * DAY, 0)
    assert c.active_org_count() == c.member_count() == 3
    assert c.required_votes() == 2
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
        assert c.open_proposal(org.org_id) == ZERO32


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
    assert c.proposal_state(unknown) == ProposalState.NONE
    assert c.ballot(unknown) == Ballot(ProposalState.NONE, 0, 0, 0, 0)
    assert c.proposal_subject(unknown) == (0, ZERO32, 0, ZERO_ADDRESS)
    for fn in (c.execute, c.expire, c.object):
        assert reverts("UnknownProposal", fn, unknown) == {"proposalId": unknown}


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


def test_admission_needs_majority_and_binds_admin_only_when_admitted(
    consortium: Consortium,
) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    new, proposal = propose(consortium, "bank-d", CONSUMER | COMPUTE)
    receipt = last_receipt(consortium)
    expires_at = now(consortium) + WEEK
    assert c.events_in(receipt, "ProposalCreated") == [
        {
            "proposalId": proposal,
            "action": ADMIT,
            "orgId": new.org_id,
            "proposerOrg": a.org_id,
            "expiresAt": expires_at,
        }
    ]
    assert c.events_in(receipt, "OrgProposed") == [
        {
            "orgId": new.org_id,
            "name": "bank-d",
            "roles": CONSUMER | COMPUTE,
            "admin": new.admin.address,
        }
    ]
    # 3 members at 50 %: ceil(1.5) = 2 votes, and never fewer than minApprovals = 2
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
    ]
    assert c.events_in(receipt, "ProposalExecuted") == []
    assert c.events_in(receipt, "OrgAdmitted") == []
    assert c.org_status(new.org_id) == OrgStatus.PROPOSED
    assert c.open_proposal(new.org_id) == proposal
    assert c.proposal_state(proposal) == ProposalState.VOTING
    assert c.ballot(proposal) == Ballot(ProposalState.VOTING, 1, 0, expires_at, 0)
    assert c.proposal_subject(proposal) == (
        ADMIT,
        new.org_id,
        CONSUMER | COMPUTE,
        new.admin.address,
    )
    assert not c.is_active_org(new.org_id)
    assert c.active_org_count() == c.member_count() == 3
    assert c.proposal_votes(proposal) == 1
    assert not c.proposal_executed(proposal)
    assert c.has_voted(proposal, a.org_id)
    assert not c.has_voted(proposal, b.org_id)
    assert c.org_name(new.org_id) == "bank-d"
    # nothing about the proposed admin is bound yet
    assert c.org_admin(new.org_id) == ZERO_ADDRESS
    assert c.org_of_account(new.admin.address) == ZERO32
    assert c.active_admin_org(new.admin.address) == ZERO32
    assert reverts("NotActiveMember", c.active_member_org, new.admin.address) == {
        "account": new.admin.address
    }
    node = new.node.address
    assert reverts(
        "NotActiveMemberAdmin", new.clients.consortium.register_node, node, "d:1", name_id("c", "d")
    ) == {"account": new.admin.address}

    receipt = b.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": b.org_id, "votes": 2, "required": 2}
    ]
    assert c.events_in(receipt, "ProposalQueued") == []  # timelock 0: executed at once
    assert c.events_in(receipt, "ProposalExecuted") == [{"proposalId": proposal}]
    assert c.events_in(receipt, "OrgAdmitted") == [{"orgId": new.org_id}]
    assert c.org_status(new.org_id) == OrgStatus.ACTIVE
    assert c.active_org_count() == c.member_count() == 4
    assert c.proposal_executed(proposal)
    assert c.proposal_state(proposal) == ProposalState.EXECUTED
    assert c.open_proposal(new.org_id) == ZERO32
    assert c.org_admin(new.org_id) == new.admin.address
    assert c.org_of_account(new.admin.address) == new.org_id
    assert c.org_roles(new.org_id) == CONSUMER | COMPUTE
    assert c.active_admin_org(new.admin.address) == new.org_id
    new.clients.consortium.register_node(node, "d.example:1", name_id("cert", "d"))
    assert c.is_active_node(node)


def test_quorum_counts_suspended_members_and_votes_stay(consortium: Consortium) -> None:
    a, reg = consortium.orgs["bank-a"], consortium.orgs["regulator"]
    c = a.clients.consortium
    new, proposal = propose(consortium, "bank-d")  # bank-a's vote: 1 of 2
    suspend(consortium, "bank-a", "bank-b", "regulator")
    # bank-a is suspended but still a member: the bar stays at 2 of 3
    assert (c.active_org_count(), c.member_count(), c.required_votes()) == (2, 3, 2)
    receipt = reg.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": reg.org_id, "votes": 2, "required": 2}
    ]
    assert c.org_status(new.org_id) == OrgStatus.ACTIVE
    assert (c.active_org_count(), c.member_count()) == (3, 4)


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
    # a second proposal for a pending id is refused, by anyone
    _, proposal = propose(consortium, "bank-d")
    for proposer in (a, b):
        assert reverts(
            "ProposalPending",
            proposer.clients.consortium.propose_member,
            new_id,
            "x",
            CONSUMER,
            fresh,
        ) == {"orgId": new_id, "proposalId": proposal}


def test_pending_admin_address_is_not_bound(consortium: Consortium) -> None:
    """Attack 6: proposing an address does not bind it; the admission executed first does."""
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    squatter, first = propose(consortium, "squatter")
    rival = name_id("org", "rival")
    second = reg.clients.consortium.propose_member(rival, "rival", CONSUMER, squatter.admin.address)
    assert a.clients.consortium.org_of_account(squatter.admin.address) == ZERO32
    b.clients.consortium.vote(second)
    assert a.clients.consortium.org_of_account(squatter.admin.address) == rival
    # the other admission can no longer take effect: its admin was bound meanwhile
    assert reverts("AccountAlreadyBound", b.clients.consortium.vote, first) == {
        "account": squatter.admin.address
    }
    assert a.clients.consortium.proposal_state(first) == ProposalState.VOTING


def test_expired_admission_frees_org_id_and_admin(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    c = a.clients.consortium
    new, proposal = propose(consortium, "bank-d")
    expires_at = c.ballot(proposal).expires_at
    assert reverts("ProposalNotExpired", c.expire, proposal) == {
        "proposalId": proposal,
        "expiresAt": expires_at,
    }
    travel_to(consortium, expires_at)
    consortium.chain.w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]
    assert c.proposal_state(proposal) == ProposalState.EXPIRED
    assert c.org_status(new.org_id) == OrgStatus.NONE
    assert reverts("ProposalIsExpired", b.clients.consortium.vote, proposal) == {
        "proposalId": proposal,
        "expiresAt": expires_at,
    }
    # a new, legitimate proposal for the same id and admin: the old one is found expired
    again = b.clients.consortium.propose_member(new.org_id, "bank-d", CONSUMER, new.admin.address)
    receipt = last_receipt(consortium)
    assert c.events_in(receipt, "ProposalExpired") == [{"proposalId": proposal}]
    assert c.open_proposal(new.org_id) == again
    a.clients.consortium.vote(again)
    assert c.org_of_account(new.admin.address) == new.org_id
    assert reverts("ProposalNotOpen", c.expire, proposal) == {
        "proposalId": proposal,
        "state": ProposalState.EXPIRED,
    }


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
        assert reverts("ProposalNotOpen", voter.clients.consortium.vote, proposal) == {
            "proposalId": proposal,
            "state": ProposalState.EXECUTED,
        }
    assert a.clients.consortium.proposal_votes(proposal) == 2


# ------------------------------------------------- attacks: no organisation alone


def test_one_org_alone_cannot_suspend_admit_or_bypass_the_regulator(
    consortium: Consortium,
) -> None:
    """Attack 1, 3 members at 50 %: the target counts, so suspending needs 2 of 3 votes."""
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    c = a.clients.consortium
    for target in (b, reg):
        proposal = c.propose_suspension(target.org_id)
        assert c.events_in(last_receipt(consortium), "VoteCast") == [
            {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
        ]
        assert c.org_status(target.org_id) == OrgStatus.ACTIVE
        assert reverts("CannotVoteOnOwnSuspension", target.clients.consortium.vote, proposal) == {
            "orgId": target.org_id
        }
    # the regulator cannot veto its own suspension either, but the majority stays in charge
    on_reg = c.open_proposal(reg.org_id)
    assert reverts("CannotVoteOnOwnSuspension", reg.clients.consortium.veto, on_reg) == {
        "orgId": reg.org_id
    }
    sybil, admission = propose(consortium, "sybil")
    assert c.org_status(sybil.org_id) == OrgStatus.PROPOSED
    assert c.active_org_count() == 3
    # the regulator vetoes the sybil; bank-a alone cannot carry it anyway
    reg.clients.consortium.veto(admission)
    assert reverts("ProposalNotOpen", b.clients.consortium.vote, admission) == {
        "proposalId": admission,
        "state": ProposalState.VETOED,
    }


def test_min_approvals_holds_at_any_threshold(consortium: Consortium) -> None:
    genesis = _genesis(consortium, 3)
    receipt = _deploy_raw(consortium, 1, genesis)
    client = ConsortiumClient(consortium.chain, receipt["contractAddress"])
    assert client.required_votes() == 2  # ceil(3 x 1 %) = 1, raised to minApprovals


@pytest.mark.parametrize("threshold", [50, 100])
def test_two_members_cannot_expel_each_other(consortium: Consortium, threshold: int) -> None:
    accounts = [consortium.new_funded_account() for _ in range(2)]
    genesis = [
        GenesisMember(name_id("org", f"pair-{i}"), f"pair-{i}", PROVIDER, acct.address)
        for i, acct in enumerate(accounts)
    ]
    deployment = deploy(
        consortium.chain,
        Sender(consortium.chain, consortium.deployer),
        Governance.dev(threshold),
        genesis,
    )
    one, two = (
        Clients.bind(consortium.chain, deployment, Sender(consortium.chain, acct)).consortium
        for acct in accounts
    )
    proposal = one.propose_suspension(genesis[1].org_id)
    assert one.events_in(last_receipt(consortium), "VoteCast") == [
        {"proposalId": proposal, "voterOrg": genesis[0].org_id, "votes": 1, "required": 2}
    ]
    assert reverts("CannotVoteOnOwnSuspension", two.vote, proposal) == {"orgId": genesis[1].org_id}
    assert one.org_status(genesis[1].org_id) == OrgStatus.ACTIVE
    assert reverts("ProposalPending", one.propose_suspension, genesis[1].org_id) == {
        "orgId": genesis[1].org_id,
        "proposalId": proposal,
    }


# ---------------------------------------------------------------------- suspension


def test_suspension_counts_target_as_member(consortium: Consortium) -> None:
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    c = a.clients.consortium
    proposal = c.propose_suspension(b.org_id)
    assert c.events_in(last_receipt(consortium), "ProposalCreated") == [
        {
            "proposalId": proposal,
            "action": SUSPEND,
            "orgId": b.org_id,
            "proposerOrg": a.org_id,
            "expiresAt": now(consortium) + WEEK,
        }
    ]
    assert c.proposal_subject(proposal) == (SUSPEND, b.org_id, 0, ZERO_ADDRESS)
    receipt = reg.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": reg.org_id, "votes": 2, "required": 2}
    ]
    assert c.events_in(receipt, "ProposalExecuted") == [{"proposalId": proposal}]
    assert c.events_in(receipt, "OrgSuspended") == [{"orgId": b.org_id}]
    assert c.org_status(b.org_id) == OrgStatus.SUSPENDED
    assert not c.is_active_org(b.org_id)
    assert (c.active_org_count(), c.member_count()) == (2, 3)
    assert c.proposal_executed(proposal)


def test_target_cannot_vote_on_its_suspension(consortium: Consortium) -> None:
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    assert reverts(
        "CannotVoteOnOwnSuspension", b.clients.consortium.propose_suspension, b.org_id
    ) == {"orgId": b.org_id}
    d = admit(consortium, "bank-d")  # 4 members: ceil(4 * 50 %) = 2
    c = a.clients.consortium
    proposal = c.propose_suspension(b.org_id)
    assert reverts("CannotVoteOnOwnSuspension", b.clients.consortium.vote, proposal) == {
        "orgId": b.org_id
    }
    assert not c.has_voted(proposal, b.org_id)
    receipt = d.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": d.org_id, "votes": 2, "required": 2}
    ]
    assert c.events_in(receipt, "OrgSuspended") == [{"orgId": b.org_id}]
    assert c.active_org_count() == 3
    del reg


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
    assert c.node_info(b.node.address).status == NodeStatus.ACTIVE
    assert c.node_org(b.node.address) == b.org_id
    who = {"account": b.admin.address}
    fresh = consortium.new_funded_account().address
    for fn, args in (
        (bc.vote, (proposal,)),
        (bc.object, (proposal,)),
        (bc.propose_member, (name_id("org", "x"), "x", CONSUMER, fresh)),
        (bc.propose_reinstatement, (b.org_id,)),
        (bc.register_node, (fresh, "b:2", name_id("cert", "b2"))),
        (bc.update_node, (b.node.address, "b:2", name_id("cert", "b2"))),
    ):
        assert reverts("NotActiveMemberAdmin", fn, *args) == who
    assert c.org_status(pending.org_id) == OrgStatus.PROPOSED


# ------------------------------------------------------------------- reinstatement


def test_reinstatement_needs_majority_and_restores_rights(consortium: Consortium) -> None:
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    c = a.clients.consortium
    suspend(consortium, "bank-b", "bank-a")
    proposal = c.propose_reinstatement(b.org_id)
    receipt = last_receipt(consortium)
    assert c.events_in(receipt, "ProposalCreated")[0]["action"] == REINSTATE
    # 3 members (b included, though it cannot vote): 2 votes
    assert c.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
    ]
    assert c.org_status(b.org_id) == OrgStatus.SUSPENDED
    receipt = reg.clients.consortium.vote(proposal)
    assert c.events_in(receipt, "OrgReinstated") == [{"orgId": b.org_id}]
    assert c.org_status(b.org_id) == OrgStatus.ACTIVE
    assert c.active_org_count() == 3
    assert c.is_active_node(b.node.address)
    assert c.active_admin_org(b.admin.address) == b.org_id
    b.clients.consortium.update_node(b.node.address, "b.example:7001", name_id("cert", "b2"))
    assert c.node_info(b.node.address).endpoint == "b.example:7001"


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
    first = c.propose_reinstatement(consortium.orgs["bank-b"].org_id)
    rc = consortium.orgs["regulator"].clients.consortium
    assert reverts(
        "ProposalPending", rc.propose_reinstatement, consortium.orgs["bank-b"].org_id
    ) == {
        "orgId": consortium.orgs["bank-b"].org_id,
        "proposalId": first,
    }


# ------------------------------------------------------------------------ timelock


def test_execution_waits_for_the_timelock(consortium: Consortium) -> None:
    g = timelocked(consortium)
    a, b = g.consortium("bank-a"), g.consortium("bank-b")
    newcomer = consortium.new_funded_account()
    new_id = name_id("org", "bank-d")
    proposal = a.propose_member(new_id, "bank-d", CONSUMER, newcomer.address)
    receipt = b.vote(proposal)
    eta = now(consortium) + DAY
    assert b.events_in(receipt, "ProposalQueued") == [
        {"proposalId": proposal, "eta": eta, "expiresAt": eta + WEEK}
    ]
    assert b.events_in(receipt, "ProposalExecuted") == []
    assert a.proposal_state(proposal) == ProposalState.QUEUED
    assert a.org_status(new_id) == OrgStatus.PROPOSED
    assert a.org_of_account(newcomer.address) == ZERO32
    reg = g.consortium("regulator")
    assert reverts("ProposalNotOpen", reg.vote, proposal) == {
        "proposalId": proposal,
        "state": ProposalState.QUEUED,
    }
    anyone = ConsortiumClient(
        consortium.chain, a.address, Sender(consortium.chain, consortium.deployer)
    )
    assert reverts("TimelockNotElapsed", anyone.execute, proposal) == {
        "proposalId": proposal,
        "eta": eta,
    }
    travel_to(consortium, eta - 2)
    assert reverts("TimelockNotElapsed", anyone.execute, proposal) == {
        "proposalId": proposal,
        "eta": eta,
    }
    travel_to(consortium, eta)
    receipt = anyone.execute(proposal)  # anyone, not only a member
    assert a.events_in(receipt, "ProposalExecuted") == [{"proposalId": proposal}]
    assert a.events_in(receipt, "OrgAdmitted") == [{"orgId": new_id}]
    assert a.org_of_account(newcomer.address) == new_id
    assert reverts("ProposalNotOpen", anyone.execute, proposal) == {
        "proposalId": proposal,
        "state": ProposalState.EXECUTED,
    }


def test_expired_queued_proposal_cannot_be_executed(consortium: Consortium) -> None:
    g = timelocked(consortium)
    a, b = g.consortium("bank-a"), g.consortium("bank-b")
    proposal = a.propose_suspension(g.org_ids["regulator"])
    b.vote(proposal)
    ballot = a.ballot(proposal)
    travel_to(consortium, ballot.expires_at)
    assert reverts("ProposalIsExpired", a.execute, proposal) == {
        "proposalId": proposal,
        "expiresAt": ballot.expires_at,
    }
    receipt = b.expire(proposal)
    assert a.events_in(receipt, "ProposalExpired") == [{"proposalId": proposal}]
    assert a.org_status(g.org_ids["regulator"]) == OrgStatus.ACTIVE
    assert a.open_proposal(g.org_ids["regulator"]) == ZERO32


def test_objections_in_the_timelock_cancel_at_min_approvals(consortium: Consortium) -> None:
    g = timelocked(consortium, extra=1)  # 4 members: bank-a, bank-b, regulator, bank-0
    a, b, reg, o = (g.consortium(n) for n in ("bank-a", "bank-b", "regulator", "bank-0"))
    newcomer = consortium.new_funded_account()
    new_id = name_id("org", "bank-d")
    proposal = a.propose_member(new_id, "bank-d", CONSUMER, newcomer.address)
    assert reverts("ProposalNotOpen", o.object, proposal) == {  # only while queued
        "proposalId": proposal,
        "state": ProposalState.VOTING,
    }
    b.vote(proposal)
    eta = a.ballot(proposal).eta
    assert reverts("VotedForProposal", b.object, proposal) == {
        "proposalId": proposal,
        "orgId": g.org_ids["bank-b"],
    }
    receipt = o.object(proposal)
    assert a.events_in(receipt, "ProposalObjected") == [
        {"proposalId": proposal, "objectorOrg": g.org_ids["bank-0"], "objections": 1, "toCancel": 2}
    ]
    assert a.has_objected(proposal, g.org_ids["bank-0"])
    assert reverts("AlreadyObjected", o.object, proposal) == {
        "proposalId": proposal,
        "orgId": g.org_ids["bank-0"],
    }
    assert a.proposal_state(proposal) == ProposalState.QUEUED  # one objector alone stops nothing
    receipt = reg.object(proposal)
    assert a.events_in(receipt, "ProposalCancelled") == [{"proposalId": proposal}]
    assert a.proposal_state(proposal) == ProposalState.CANCELLED
    assert a.org_status(new_id) == OrgStatus.NONE
    travel_to(consortium, eta)
    assert reverts("ProposalNotOpen", a.execute, proposal) == {
        "proposalId": proposal,
        "state": ProposalState.CANCELLED,
    }
    # the id and the admin are free again
    a.propose_member(new_id, "bank-d", CONSUMER, newcomer.address)


def test_objections_close_with_the_timelock_and_exclude_the_target(consortium: Consortium) -> None:
    g = timelocked(consortium, extra=1)
    a, b, reg, o = (g.consortium(n) for n in ("bank-a", "bank-b", "regulator", "bank-0"))
    proposal = a.propose_suspension(g.org_ids["bank-0"])
    reg.vote(proposal)
    assert reverts("CannotVoteOnOwnSuspension", o.object, proposal) == {
        "orgId": g.org_ids["bank-0"]
    }
    eta = a.ballot(proposal).eta
    travel_to(consortium, eta)
    assert reverts("TimelockElapsed", b.object, proposal) == {"proposalId": proposal, "eta": eta}
    b.execute(proposal)
    assert a.org_status(g.org_ids["bank-0"]) == OrgStatus.SUSPENDED


def test_regulator_veto_kills_a_proposal(consortium: Consortium) -> None:
    g = timelocked(consortium)
    a, b, reg = (g.consortium(n) for n in ("bank-a", "bank-b", "regulator"))
    proposal = a.propose_member(
        name_id("org", "sybil"), "sybil", CONSUMER, consortium.new_funded_account().address
    )
    b.vote(proposal)  # queued: the two banks agree
    for bank, name in ((a, "bank-a"), (b, "bank-b")):
        assert reverts("NotRegulator", bank.veto, proposal) == {"orgId": g.org_ids[name]}
    receipt = reg.veto(proposal)
    assert a.events_in(receipt, "ProposalVetoed") == [
        {"proposalId": proposal, "regulatorOrg": g.org_ids["regulator"]}
    ]
    assert a.proposal_state(proposal) == ProposalState.VETOED
    assert a.org_status(name_id("org", "sybil")) == OrgStatus.NONE
    travel_to(consortium, a.ballot(proposal).eta)
    assert reverts("ProposalNotOpen", a.execute, proposal) == {
        "proposalId": proposal,
        "state": ProposalState.VETOED,
    }
    assert reverts("ProposalNotOpen", reg.veto, proposal) == {
        "proposalId": proposal,
        "state": ProposalState.VETOED,
    }


def test_non_member_cannot_object_or_veto(consortium: Consortium) -> None:
    g = timelocked(consortium)
    a = g.consortium("bank-a")
    proposal = a.propose_suspension(g.org_ids["bank-b"])
    outsider = consortium.new_funded_account()
    client = ConsortiumClient(consortium.chain, a.address, Sender(consortium.chain, outsider))
    for fn in (client.object, client.veto, client.vote):
        assert reverts("NotActiveMemberAdmin", fn, proposal) == {"account": outsider.address}


# --------------------------------------------------------------------------- nodes


def _new_node(consortium: Consortium) -> LocalAccount:
    return consortium.new_funded_account()


def _trusted(consortium: Consortium, name: str) -> bytes:
    """A measurement the consortium trusts: proposed by bank-a, carried by bank-b's vote."""
    measurement = name_id("tee", name)
    proposal = consortium.orgs["bank-a"].clients.consortium.propose_measurement(
        measurement, name_id("algorithm", name)
    )
    consortium.orgs["bank-b"].clients.consortium.vote(proposal)
    assert consortium.orgs["bank-a"].clients.consortium.is_measurement_trusted(measurement)
    return measurement


def test_register_node(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    c = a.clients.consortium
    node = _new_node(consortium)
    cert, tee = name_id("cert", "a2"), _trusted(consortium, "a2")
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
    cert, tee = name_id("cert", "a-new"), _trusted(consortium, "a-new")
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
    reinstate(consortium, "bank-b", "bank-a")
    assert not c.is_active_node(b.node.address)  # reinstatement does not revive it
