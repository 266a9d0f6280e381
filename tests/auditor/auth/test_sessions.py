"""SessionStore against the index of a real chain, tried the way an attacker member would.

Every refusal is checked for its status and field, and every acceptance for the
organisation and regulator flag the chain says (read with the Consortium contract,
independently of the index).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from auditor.auth import challenge as typed
from auditor.auth.errors import AuthError
from auditor.auth.sessions import CHALLENGE_TTL, MAX_PENDING_PER_ADDRESS, SessionStore
from ledger.roles import Role
from tests.auditor.auth.conftest import AUDIENCE, Clock, Indexed, World
from tests.contracts.helpers import add_node


def store_for(world: World, indexed: Indexed, clock: Clock | None = None) -> SessionStore:
    return SessionStore(
        indexed.store,
        world.chain_id,
        world.consortium_address,
        AUDIENCE,
        ttl=900,
        clock=clock or Clock(),
    )


def sign_in(store: SessionStore, account: LocalAccount) -> tuple[str, Any]:
    data = store.challenge(account.address)
    return store.redeem(account.address, data["message"]["nonce"], typed.sign(account, data))


def refused(excinfo: pytest.ExceptionInfo[AuthError], status: int, field: str) -> None:
    assert excinfo.value.status_code == status, excinfo.value.to_json()
    assert excinfo.value.field == field, excinfo.value.to_json()
    assert excinfo.value.message


@pytest.mark.parametrize(
    "who", ["bank-a/admin", "bank-a/node", "regulator/admin", "regulator/node"]
)
def test_active_admins_and_nodes_sign_in_as_their_org(
    world: World, indexed: Indexed, who: str
) -> None:
    clock = Clock()
    store = store_for(world, indexed, clock)
    account = world.account(who)
    token, principal = sign_in(store, account)
    consortium = world.consortium.orgs["bank-a"].clients.consortium  # a chain reader
    org_id = consortium.active_member_org(account.address)  # what the contract says
    assert principal.address == account.address
    assert principal.org_id == org_id
    assert principal.org_name == consortium.org_name(org_id)
    assert principal.is_regulator == bool(consortium.org_roles(org_id) & Role.REGULATOR)
    assert principal.is_regulator == who.startswith("regulator")
    assert principal.expires_at == int(clock.now) + 900
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    assert store.principal(token) == principal
    assert store.principal(token + "x") is None


def test_two_sign_ins_get_different_tokens_and_nonces(world: World, indexed: Indexed) -> None:
    store = store_for(world, indexed)
    account = world.account("bank-a/admin")
    first, second = store.challenge(account.address), store.challenge(account.address)
    assert first["message"]["nonce"] != second["message"]["nonce"]
    assert sign_in(store, account)[0] != sign_in(store, account)[0]


def test_the_challenge_is_bound_to_chain_consortium_audience_and_lifetime(
    world: World, indexed: Indexed
) -> None:
    clock = Clock()
    data = store_for(world, indexed, clock).challenge(world.account("regulator/admin").address)
    assert data["domain"] == {
        "name": "provnet auditor",
        "version": "1",
        "chainId": world.chain_id,
        "verifyingContract": world.consortium_address,
    }
    message = data["message"]
    assert message["address"] == world.account("regulator/admin").address
    assert message["audience"] == AUDIENCE
    assert message["issuedAt"] == int(clock.now)
    assert message["expiresAt"] == int(clock.now) + CHALLENGE_TTL == int(clock.now) + 300
    assert data["primaryType"] == "SignIn"


@pytest.mark.parametrize(
    "who", ["unregistered", "revoked node", "suspended admin", "suspended node"]
)
def test_keys_that_are_not_active_members_get_no_challenge(
    world: World, indexed: Indexed, who: str
) -> None:
    account = {
        "unregistered": Account.create(),
        "revoked node": world.revoked_node,
        "suspended admin": world.account("bank-b/admin"),
        "suspended node": world.account("bank-b/node"),
    }[who]
    with pytest.raises(AuthError) as excinfo:
        store_for(world, indexed).challenge(account.address)
    refused(excinfo, 401, "address")
    assert "not registered" in excinfo.value.message


def test_a_signature_by_an_unregistered_key_over_a_members_challenge_is_refused(
    world: World, indexed: Indexed
) -> None:
    store = store_for(world, indexed)
    victim = world.account("regulator/admin")
    data = store.challenge(victim.address)
    attacker = Account.create()
    with pytest.raises(AuthError) as excinfo:
        store.redeem(victim.address, data["message"]["nonce"], typed.sign(attacker, data))
    refused(excinfo, 401, "signature")


@pytest.mark.parametrize("who", ["revoked node", "suspended admin", "bank-a/admin"])
def test_a_challenge_issued_to_one_key_cannot_be_redeemed_by_another(
    world: World, indexed: Indexed, who: str
) -> None:
    """The attacker signs the regulator's challenge with its own key and claims to be
    itself (a member, or a key the chain no longer accepts)."""
    store = store_for(world, indexed)
    data = store.challenge(world.account("regulator/admin").address)
    attacker = {
        "revoked node": world.revoked_node,
        "suspended admin": world.account("bank-b/admin"),
        "bank-a/admin": world.account("bank-a/admin"),
    }[who]
    with pytest.raises(AuthError) as excinfo:
        store.redeem(attacker.address, data["message"]["nonce"], typed.sign(attacker, data))
    refused(excinfo, 401, "address")


@pytest.mark.parametrize(
    "change",
    [
        ("domain", "chainId", 1),
        ("domain", "verifyingContract", "0x" + "12" * 20),
        ("domain", "name", "another service"),
        ("message", "audience", "http://another-auditor.test"),
        ("message", "expiresAt", 2**63),
    ],
    ids=lambda c: f"{c[0]}.{c[1]}",
)
def test_a_signature_over_another_domain_or_audience_is_refused_and_burns_the_challenge(
    world: World, indexed: Indexed, change: tuple[str, str, object]
) -> None:
    store = store_for(world, indexed)
    account = world.account("regulator/admin")
    data = store.challenge(account.address)
    other = copy.deepcopy(data)
    other[change[0]][change[1]] = change[2]
    nonce = data["message"]["nonce"]
    with pytest.raises(AuthError) as excinfo:
        store.redeem(account.address, nonce, typed.sign(account, other))
    refused(excinfo, 401, "signature")
    # The failed attempt used the challenge up: even the right signature is now refused.
    with pytest.raises(AuthError) as excinfo:
        store.redeem(account.address, nonce, typed.sign(account, data))
    refused(excinfo, 401, "nonce")


def test_a_redeemed_challenge_cannot_be_replayed(world: World, indexed: Indexed) -> None:
    store = store_for(world, indexed)
    account = world.account("bank-a/node")
    data = store.challenge(account.address)
    signature = typed.sign(account, data)
    store.redeem(account.address, data["message"]["nonce"], signature)
    with pytest.raises(AuthError) as excinfo:
        store.redeem(account.address, data["message"]["nonce"], signature)
    refused(excinfo, 401, "nonce")
    # Nor at another auditor store of the same chain: nonces are the store's own.
    with pytest.raises(AuthError) as excinfo:
        store_for(world, indexed).redeem(account.address, data["message"]["nonce"], signature)
    refused(excinfo, 401, "nonce")


def test_an_expired_challenge_is_refused(world: World, indexed: Indexed) -> None:
    clock = Clock()
    store = store_for(world, indexed, clock)
    account = world.account("regulator/node")
    late, in_time = store.challenge(account.address), store.challenge(account.address)
    clock.now += CHALLENGE_TTL  # the last second it is valid
    store.redeem(account.address, in_time["message"]["nonce"], typed.sign(account, in_time))
    clock.now += 1
    with pytest.raises(AuthError) as excinfo:
        store.redeem(account.address, late["message"]["nonce"], typed.sign(account, late))
    refused(excinfo, 401, "nonce")
    assert "expired" in excinfo.value.message


def test_a_token_stops_working_after_its_ttl(world: World, indexed: Indexed) -> None:
    clock = Clock()
    store = store_for(world, indexed, clock)
    token, principal = sign_in(store, world.account("regulator/admin"))
    clock.now += 900
    assert store.principal(token) == principal
    clock.now += 1
    assert store.principal(token) is None
    clock.now -= 10  # dropped for good, even if the clock went back
    assert store.principal(token) is None


def test_signing_out_ends_the_token(world: World, indexed: Indexed) -> None:
    store = store_for(world, indexed)
    token, _ = sign_in(store, world.account("bank-a/admin"))
    store.revoke(token)
    assert store.principal(token) is None


def test_a_node_revoked_after_sign_in_loses_its_token_when_the_index_sees_it(
    world: World, indexed: Indexed
) -> None:
    node = add_node(world.consortium, "regulator")
    indexed.catch_up()
    store = store_for(world, indexed)
    token, principal = sign_in(store, node.account)
    assert principal.is_regulator
    world.consortium.orgs["regulator"].clients.consortium.revoke_node(node.address)
    assert store.principal(token) == principal  # the index has not seen it yet
    indexed.catch_up()
    assert store.principal(token) is None


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("address", "not an address", 422),
        ("address", "0x" + "ab" * 19, 422),
        ("nonce", "0x1234", 422),
        ("nonce", "zz" * 32, 422),
        ("signature", "0x" + "00" * 64, 422),
        ("signature", "0x" + "00" * 65, 401),
        ("signature", "0x" + "ff" * 65, 401),
    ],
)
def test_malformed_input_is_named_never_a_crash(
    world: World, indexed: Indexed, field: str, value: str, status: int
) -> None:
    store = store_for(world, indexed)
    account = world.account("bank-a/admin")
    data = store.challenge(account.address)
    args = {
        "address": account.address,
        "nonce": data["message"]["nonce"],
        "signature": typed.sign(account, data),
        field: value,
    }
    with pytest.raises(AuthError) as excinfo:
        store.redeem(args["address"], args["nonce"], args["signature"])
    refused(excinfo, status, field)


def test_open_challenges_per_key_are_bounded_oldest_dropped_first(
    world: World, indexed: Indexed
) -> None:
    store = store_for(world, indexed)
    account = world.account("bank-a/admin")
    issued = [store.challenge(account.address) for _ in range(MAX_PENDING_PER_ADDRESS + 2)]
    oldest, newest = issued[0], issued[-1]
    with pytest.raises(AuthError) as excinfo:
        store.redeem(account.address, oldest["message"]["nonce"], typed.sign(account, oldest))
    refused(excinfo, 401, "nonce")
    store.redeem(account.address, newest["message"]["nonce"], typed.sign(account, newest))
    kept = issued[2]  # the oldest one still open
    store.redeem(account.address, kept["message"]["nonce"], typed.sign(account, kept))
