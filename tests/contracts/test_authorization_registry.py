"""AuthorizationRegistry: grants, revocation, the one-time binding and metering by tasks."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from ledger.clients.authorizations import ANY_APPROVED_ALGORITHM, AuthorizationRegistryClient
from ledger.clients.tasks import Participant, TaskState
from ledger.errors import custom_error
from ledger.ids import InvalidInput, name_id, task_id_for
from tests.conftest import Consortium
from tests.contracts.helpers import (  # _fast_senders: autouse fixture
    ALGO,
    ALGO_2,
    HOUR,
    PARAMS,
    PURPOSE,
    ZERO32,
    ZERO_ADDRESS,
    Dataset,
    FastSender,
    _fast_senders,  # noqa: F401
    add_node,
    approve_algorithm,
    build_task,
    deploy_authorization_registry,
    deprecate_algorithm,
    make_grant,
    now,
    propose_algorithm,
    register_dataset,
    revert_args,
    suspend,
    travel_to,
)


@pytest.fixture
def ds_b(consortium: Consortium) -> Dataset:
    """bank-b's dataset, with ALGO approved."""
    approve_algorithm(consortium)
    return register_dataset(consortium.orgs["bank-b"], "bank-b-data")


def expected_grant_id(c: Consortium, dataset_id: bytes, grantee: bytes, nonce: int) -> bytes:
    address = c.deployment.address("AuthorizationRegistry")
    return keccak(
        abi_encode(
            ["uint256", "address", "bytes32", "bytes32", "uint256"],
            [c.chain.chain_id, address, dataset_id, grantee, nonce],
        )
    )


# ------------------------------------------------------------------------------ grant


def test_grant_stores_the_grant_and_emits_every_field(
    consortium: Consortium, ds_b: Dataset
) -> None:
    c = consortium
    bank_a, bank_b = c.orgs["bank-a"], c.orgs["bank-b"]
    not_after = now(c) + HOUR
    auth = bank_b.clients.authorizations
    receipt = auth._transact("grant", ds_b.dataset_id, bank_a.org_id, ALGO, PURPOSE, not_after, 3)
    (event,) = auth.events_in(receipt, "GrantCreated")
    grant_id = expected_grant_id(c, ds_b.dataset_id, bank_a.org_id, 0)
    assert event == {
        "grantId": grant_id,
        "datasetId": ds_b.dataset_id,
        "granteeOrg": bank_a.org_id,
        "grantorOrg": bank_b.org_id,
        "algorithmDigest": ALGO,
        "purpose": PURPOSE,
        "notAfter": not_after,
        "maxUses": 3,
    }
    info = auth.info(grant_id)
    assert (info.dataset_id, info.grantee_org, info.algorithm_digest) == (
        ds_b.dataset_id,
        bank_a.org_id,
        ALGO,
    )
    assert (info.not_after, info.max_uses, info.used, info.revoked) == (not_after, 3, 0, False)
    assert auth.is_usable(grant_id) is True
    assert auth.is_revoked(grant_id) is False


def test_a_grants_purpose_is_read_back_from_its_event_alone(
    consortium: Consortium, ds_b: Dataset
) -> None:
    """Purpose is event-only; a metered service reads it back to bind a query's purpose."""
    c = consortium
    bank_a, bank_b = c.orgs["bank-a"], c.orgs["bank-b"]
    auth = bank_b.clients.authorizations
    screening, opening = name_id("purpose", "screening"), name_id("purpose", "account-opening")
    first = auth.grant(ds_b.dataset_id, bank_a.org_id, screening, now(c) + HOUR, 2)
    second = auth.grant(ds_b.dataset_id, bank_a.org_id, opening, now(c) + HOUR, 2)
    reader = bank_a.clients.authorizations  # any account reads it
    assert reader.purpose_of(first) == screening
    assert reader.purpose_of(second) == opening
    head = c.chain.head()
    with pytest.raises(InvalidInput, match="no GrantCreated event"):
        reader.purpose_of(first, from_block=head + 1)  # made before that block
    with pytest.raises(InvalidInput, match="no GrantCreated event"):
        reader.purpose_of(bytes([9]) * 32)


def test_grant_ids_are_distinct_per_grant_and_any_approved_stores_zero(
    consortium: Consortium, ds_b: Dataset
) -> None:
    c = consortium
    bank_a = c.orgs["bank-a"]
    first = make_grant(c, "bank-b", ds_b.dataset_id)
    second = make_grant(c, "bank-b", ds_b.dataset_id)  # same dataset and grantee
    assert first == expected_grant_id(c, ds_b.dataset_id, bank_a.org_id, 0)
    assert second == expected_grant_id(c, ds_b.dataset_id, bank_a.org_id, 1)
    assert first != second
    assert bank_a.clients.authorizations.info(second).algorithm_digest == ANY_APPROVED_ALGORITHM


def test_a_node_of_the_owner_may_grant(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    grant_id = c.orgs["bank-b"].node_clients.authorizations.grant(
        ds_b.dataset_id, c.orgs["regulator"].org_id, PURPOSE, now(c) + HOUR, 1
    )
    info = c.orgs["bank-a"].clients.authorizations.info(grant_id)
    assert info.grantee_org == c.orgs["regulator"].org_id
    assert info.max_uses == 1


def test_grant_by_another_org_reverts_not_dataset_owner(
    consortium: Consortium, ds_b: Dataset
) -> None:
    c = consortium
    bank_a = c.orgs["bank-a"]
    # even the would-be grantee cannot grant itself another org's data
    with pytest.raises(custom_error("NotDatasetOwner")) as exc:
        bank_a.clients.authorizations.grant(
            ds_b.dataset_id, bank_a.org_id, PURPOSE, now(c) + HOUR, 1
        )
    assert revert_args(exc) == {"datasetId": ds_b.dataset_id, "orgId": bank_a.org_id}


def test_grant_by_non_member_reverts(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    outsider = c.new_funded_account()
    with pytest.raises(custom_error("NotActiveMember")) as exc:
        c.clients_for(outsider).authorizations.grant(
            ds_b.dataset_id, c.orgs["bank-a"].org_id, PURPOSE, now(c) + HOUR, 1
        )
    assert revert_args(exc) == {"account": outsider.address}


def test_grant_by_suspended_owner_reverts(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    suspend(c, "bank-b")
    with pytest.raises(custom_error("NotActiveMember")):
        make_grant(c, "bank-b", ds_b.dataset_id)


def test_grant_of_unknown_dataset_reverts(consortium: Consortium) -> None:
    unknown = name_id("dataset", "nope")
    with pytest.raises(custom_error("UnknownDataset")) as exc:
        make_grant(consortium, "bank-b", unknown)
    assert revert_args(exc) == {"datasetId": unknown}


def test_grant_of_retired_dataset_reverts(consortium: Consortium, ds_b: Dataset) -> None:
    consortium.orgs["bank-b"].clients.datasets.retire(ds_b.dataset_id)
    with pytest.raises(custom_error("DatasetIsRetired")) as exc:
        make_grant(consortium, "bank-b", ds_b.dataset_id)
    assert revert_args(exc) == {"datasetId": ds_b.dataset_id}


def test_grant_to_suspended_org_reverts(consortium: Consortium, ds_b: Dataset) -> None:
    suspend(consortium, "bank-a")
    with pytest.raises(custom_error("OrgNotActive")) as exc:
        make_grant(consortium, "bank-b", ds_b.dataset_id, "bank-a")
    assert revert_args(exc) == {"orgId": consortium.orgs["bank-a"].org_id}


def test_grant_to_unknown_org_reverts(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    ghost = name_id("org", "ghost")
    with pytest.raises(custom_error("OrgNotActive")) as exc:
        c.orgs["bank-b"].clients.authorizations.grant(
            ds_b.dataset_id, ghost, PURPOSE, now(c) + HOUR, 1
        )
    assert revert_args(exc) == {"orgId": ghost}


@pytest.mark.parametrize("status", ["unknown", "proposed", "deprecated"])
def test_grant_pinned_to_unapproved_algorithm_reverts(
    consortium: Consortium, ds_b: Dataset, status: str
) -> None:
    c = consortium
    digest = ALGO_2
    if status == "proposed":
        propose_algorithm(c, digest)
    elif status == "deprecated":
        approve_algorithm(c, digest)
        deprecate_algorithm(c, digest)
    with pytest.raises(custom_error("AlgorithmNotApproved")) as exc:
        make_grant(c, "bank-b", ds_b.dataset_id, algorithm=digest)
    assert revert_args(exc) == {"digest": digest}


@pytest.mark.parametrize("offset", [-HOUR, 0, 1])
def test_grant_expiry_must_be_in_the_future(
    consortium: Consortium, ds_b: Dataset, offset: int
) -> None:
    c = consortium
    mined_at = now(c) + 1  # the grant's block
    not_after = mined_at + offset
    if offset > 0:
        grant_id = make_grant(c, "bank-b", ds_b.dataset_id, not_after=not_after)
        assert c.orgs["bank-a"].clients.authorizations.info(grant_id).not_after == not_after
        return
    with pytest.raises(custom_error("InvalidExpiry")) as exc:
        make_grant(c, "bank-b", ds_b.dataset_id, not_after=not_after)
    assert revert_args(exc) == {"notAfter": not_after}


def test_grant_with_zero_max_uses_reverts(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    auth = c.orgs["bank-b"].clients.authorizations
    bank_a = c.orgs["bank-a"].org_id
    # the client refuses before sending ...
    with pytest.raises(InvalidInput, match="max_uses"):
        auth.grant(ds_b.dataset_id, bank_a, PURPOSE, now(c) + HOUR, 0)
    # ... and so does the contract
    with pytest.raises(custom_error("InvalidMaxUses")) as exc:
        auth._transact("grant", ds_b.dataset_id, bank_a, ZERO32, PURPOSE, now(c) + HOUR, 0)
    assert revert_args(exc) == {}


# ----------------------------------------------------------------------------- revoke


@pytest.mark.parametrize("by", ["admin", "node"])
def test_revoke_marks_the_grant_and_emits(consortium: Consortium, ds_b: Dataset, by: str) -> None:
    c = consortium
    bank_b = c.orgs["bank-b"]
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id)
    clients = bank_b.clients if by == "admin" else bank_b.node_clients
    receipt = clients.authorizations.revoke(grant_id)
    assert clients.authorizations.events_in(receipt, "GrantRevoked") == [
        {"grantId": grant_id, "byOrg": bank_b.org_id}
    ]
    auth = c.orgs["bank-a"].clients.authorizations
    assert auth.is_revoked(grant_id) is True
    assert auth.is_usable(grant_id) is False
    info = auth.info(grant_id)
    assert info.revoked is True
    assert info.used == 0


@pytest.mark.parametrize("who", ["grantee", "third-org", "outsider"])
def test_revoke_by_non_owner_reverts(consortium: Consortium, ds_b: Dataset, who: str) -> None:
    c = consortium
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id)
    if who == "outsider":
        outsider = c.new_funded_account()
        with pytest.raises(custom_error("NotActiveMember")) as exc:
            c.clients_for(outsider).authorizations.revoke(grant_id)
        assert revert_args(exc) == {"account": outsider.address}
    else:
        org = c.orgs["bank-a" if who == "grantee" else "regulator"]
        with pytest.raises(custom_error("NotDatasetOwner")) as exc:
            org.clients.authorizations.revoke(grant_id)
        assert revert_args(exc) == {"datasetId": ds_b.dataset_id, "orgId": org.org_id}
    assert c.orgs["bank-a"].clients.authorizations.is_revoked(grant_id) is False


def test_revoke_unknown_grant_reverts(consortium: Consortium) -> None:
    unknown = name_id("grant", "nope")
    auth = consortium.orgs["bank-b"].clients.authorizations
    with pytest.raises(custom_error("UnknownGrant")) as exc:
        auth.revoke(unknown)
    assert revert_args(exc) == {"grantId": unknown}
    # the views agree: unknown is neither usable nor revoked, and has no info
    assert auth.is_usable(unknown) is False
    assert auth.is_revoked(unknown) is False
    with pytest.raises(custom_error("UnknownGrant")):
        auth.info(unknown)


def test_double_revoke_reverts(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id)
    c.orgs["bank-b"].clients.authorizations.revoke(grant_id)
    with pytest.raises(custom_error("GrantAlreadyRevoked")) as exc:
        c.orgs["bank-b"].node_clients.authorizations.revoke(grant_id)
    assert revert_args(exc) == {"grantId": grant_id}


def test_grant_expiry_shows_in_is_usable(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    not_after = now(c) + 100
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id, not_after=not_after)
    auth = c.orgs["bank-a"].clients.authorizations
    travel_to(c, not_after)  # latest block is now not_after - 1
    assert auth.is_usable(grant_id) is True
    travel_to(c, not_after + 2)  # latest block is past not_after
    assert auth.is_usable(grant_id) is False
    assert auth.is_revoked(grant_id) is False


# ------------------------------------------------------------------ settleUses (metered services)


def test_settle_uses_adds_the_block_and_emits_both_events(
    consortium: Consortium, ds_b: Dataset
) -> None:
    c = consortium
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=10)
    relay = c.orgs["bank-b"].node_clients.authorizations  # a node of the dataset's owner
    day_1, day_2 = name_id("settlement", "day-1"), name_id("settlement", "day-2")
    receipt = relay.settle_uses(grant_id, 4, day_1)
    assert relay.events_in(receipt, "GrantUsed") == [
        {"grantId": grant_id, "used": 4, "maxUses": 10}
    ]
    assert relay.events_in(receipt, "UsesSettled") == [
        {
            "grantId": grant_id,
            "uses": 4,
            "settlement": day_1,
            "byOrg": c.orgs["bank-b"].org_id,
        }
    ]
    assert relay.is_settled(day_1) is True and relay.is_settled(day_2) is False
    relay.settle_uses(grant_id, 6, day_2)
    assert relay.info(grant_id).used == 10
    assert relay.is_usable(grant_id) is False


def test_a_retried_settlement_cannot_charge_twice(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=10)
    relay = c.orgs["bank-b"].clients.authorizations
    settlement = name_id("settlement", "day-1")
    relay.settle_uses(grant_id, 2, settlement)
    with pytest.raises(custom_error("SettlementAlreadyRecorded")) as exc:
        relay.settle_uses(grant_id, 2, settlement)
    assert revert_args(exc) == {"settlement": settlement}
    with pytest.raises(custom_error("SettlementAlreadyRecorded")):
        relay.settle_uses(grant_id, 1, ZERO32)
    with pytest.raises(custom_error("InvalidUses")):
        c.orgs["bank-b"].clients.authorizations._transact(
            "settleUses", grant_id, 0, name_id("settlement", "empty")
        )
    assert relay.info(grant_id).used == 2


def test_settlement_beyond_the_quota_reverts_whole(consortium: Consortium, ds_b: Dataset) -> None:
    c = consortium
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=3)
    relay = c.orgs["bank-b"].clients.authorizations
    relay.settle_uses(grant_id, 2, name_id("settlement", "a"))
    with pytest.raises(custom_error("GrantExhausted")) as exc:
        relay.settle_uses(grant_id, 2, name_id("settlement", "b"))
    assert revert_args(exc) == {"grantId": grant_id}
    assert relay.info(grant_id).used == 2
    assert relay.is_settled(name_id("settlement", "b")) is False


@pytest.mark.parametrize("who", ["grantee", "third-org", "outsider"])
def test_only_the_dataset_owner_settles(consortium: Consortium, ds_b: Dataset, who: str) -> None:
    """The grantee cannot settle (it would burn its own quota to hide or fake use), and
    nobody else may charge the grant."""
    c = consortium
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=3)
    settlement = name_id("settlement", who)
    if who == "outsider":
        outsider = c.new_funded_account()
        with pytest.raises(custom_error("NotActiveMember")):
            c.clients_for(outsider).authorizations.settle_uses(grant_id, 1, settlement)
    else:
        org = c.orgs["bank-a" if who == "grantee" else "regulator"]
        with pytest.raises(custom_error("NotDatasetOwner")) as exc:
            org.clients.authorizations.settle_uses(grant_id, 1, settlement)
        assert revert_args(exc) == {"datasetId": ds_b.dataset_id, "orgId": org.org_id}
    assert c.orgs["bank-b"].clients.authorizations.info(grant_id).used == 0


def test_uses_consumed_before_revocation_or_expiry_still_settle(
    consortium: Consortium, ds_b: Dataset
) -> None:
    c = consortium
    not_after = now(c) + 100
    revoked = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=5)
    expired = make_grant(c, "bank-b", ds_b.dataset_id, max_uses=5, not_after=not_after)
    relay = c.orgs["bank-b"].clients.authorizations
    relay.revoke(revoked)
    travel_to(c, not_after + 10)
    relay.settle_uses(revoked, 1, name_id("settlement", "revoked"))
    relay.settle_uses(expired, 1, name_id("settlement", "expired"))
    assert relay.info(revoked).used == 1 and relay.info(expired).used == 1
    with pytest.raises(custom_error("UnknownGrant")):
        relay.settle_uses(name_id("grant", "nope"), 1, name_id("settlement", "x"))
    with pytest.raises(InvalidInput):
        relay.settle_uses(revoked, 0, name_id("settlement", "y"))


# ------------------------------------------------------------- consumeUse and binding


def test_consume_use_by_anyone_but_the_task_registry_reverts(
    consortium: Consortium, ds_b: Dataset
) -> None:
    c = consortium
    grant_id = make_grant(c, "bank-b", ds_b.dataset_id)
    bank_a = c.orgs["bank-a"]
    callers = [bank_a.admin, bank_a.node, c.orgs["bank-b"].admin, c.deployer]
    for account in callers:
        with pytest.raises(custom_error("NotTaskRegistry")) as exc:
            c.clients_for(account).authorizations.consume_use(
                grant_id, bank_a.org_id, ds_b.dataset_id, ALGO
            )
        assert revert_args(exc) == {"caller": account.address}
    assert bank_a.clients.authorizations.info(grant_id).used == 0


def test_deployment_bound_the_task_registry_and_renounced(consortium: Consortium) -> None:
    c = consortium
    auth = c.orgs["bank-a"].clients.authorizations
    assert auth.task_registry() == c.deployment.address("TaskRegistry")
    assert auth.owner() == ZERO_ADDRESS
    for account in (c.deployer, c.orgs["bank-a"].admin):
        with pytest.raises(custom_error("TaskRegistryAlreadyBound")):
            c.clients_for(account).authorizations.bind_task_registry(account.address)
    assert auth.task_registry() == c.deployment.address("TaskRegistry")


def fresh_registry(c: Consortium) -> tuple[AuthorizationRegistryClient, str]:
    deployer = c.new_funded_account()
    address = deploy_authorization_registry(c, deployer)
    return AuthorizationRegistryClient(c.chain, address, FastSender(c.chain, deployer)), address


def test_bind_task_registry_once_by_owner(consortium: Consortium) -> None:
    c = consortium
    owner_client, address = fresh_registry(c)
    owner = owner_client.sender
    assert owner is not None
    assert owner_client.owner() == owner.address
    assert owner_client.task_registry() == ZERO_ADDRESS

    # before binding nobody may consume, not even through the zero-address default
    with pytest.raises(custom_error("NotTaskRegistry")):
        owner_client.consume_use(name_id("grant", "x"), ZERO32, ZERO32, ALGO)

    stranger = c.new_funded_account()
    as_stranger = AuthorizationRegistryClient(c.chain, address, FastSender(c.chain, stranger))
    with pytest.raises(custom_error("OwnableUnauthorizedAccount")) as exc:
        as_stranger.bind_task_registry(stranger.address)
    assert revert_args(exc) == {"account": stranger.address}

    with pytest.raises(custom_error("InvalidTaskRegistry")):
        owner_client.bind_task_registry(ZERO_ADDRESS)

    target = c.new_funded_account().address
    receipt = owner_client.bind_task_registry(target)
    assert owner_client.events_in(receipt, "TaskRegistryBound") == [{"taskRegistry": target}]
    assert owner_client.events_in(receipt, "OwnershipTransferred") == [
        {"previousOwner": owner.address, "newOwner": ZERO_ADDRESS}
    ]
    assert owner_client.task_registry() == target
    assert owner_client.owner() == ZERO_ADDRESS

    with pytest.raises(custom_error("TaskRegistryAlreadyBound")):
        owner_client.bind_task_registry(owner.address)
    assert owner_client.task_registry() == target


def test_consume_use_checks_every_property_of_the_grant(
    consortium: Consortium, ds_b: Dataset
) -> None:
    """consumeUse called directly, by an account bound as the TaskRegistry of a fresh registry.

    This reaches the branches the real TaskRegistry never does (it checks approval
    itself first): an any-approved grant refusing a deprecated algorithm, a wrong dataset.
    """
    c = consortium
    owner_client, address = fresh_registry(c)
    fake_registry = c.new_funded_account()
    owner_client.bind_task_registry(fake_registry.address)
    bank_a, bank_b = c.orgs["bank-a"], c.orgs["bank-b"]
    grantor = AuthorizationRegistryClient(c.chain, address, FastSender(c.chain, bank_b.admin))
    meter = AuthorizationRegistryClient(c.chain, address, FastSender(c.chain, fake_registry))
    other_ds = register_dataset(bank_b, "bank-b-other")
    approve_algorithm(c, ALGO_2, "v2")
    not_after = now(c) + HOUR
    any_grant = grantor.grant(ds_b.dataset_id, bank_a.org_id, PURPOSE, not_after, 2)

    def consume(grant_id: bytes, org: bytes, ds: bytes, algo: bytes) -> None:
        meter.consume_use(grant_id, org, ds, algo)

    unknown = name_id("grant", "nope")
    with pytest.raises(custom_error("UnknownGrant")):
        consume(unknown, bank_a.org_id, ds_b.dataset_id, ALGO)
    with pytest.raises(custom_error("WrongGrantee")) as exc:
        consume(any_grant, bank_b.org_id, ds_b.dataset_id, ALGO)
    assert revert_args(exc) == {"grantId": any_grant, "orgId": bank_b.org_id}
    with pytest.raises(custom_error("WrongDataset")) as exc:
        consume(any_grant, bank_a.org_id, other_ds.dataset_id, ALGO)
    assert revert_args(exc) == {"grantId": any_grant, "datasetId": other_ds.dataset_id}
    unapproved = name_id("algorithm", "never-proposed")
    with pytest.raises(custom_error("AlgorithmNotAllowed")) as exc:
        consume(any_grant, bank_a.org_id, ds_b.dataset_id, unapproved)
    assert revert_args(exc) == {"grantId": any_grant, "algorithmDigest": unapproved}
    assert meter.info(any_grant).used == 0

    receipt = meter.consume_use(any_grant, bank_a.org_id, ds_b.dataset_id, ALGO_2)
    assert meter.events_in(receipt, "GrantUsed") == [
        {"grantId": any_grant, "used": 1, "maxUses": 2}
    ]
    # an any-approved grant stops covering an algorithm once it is deprecated
    deprecate_algorithm(c, ALGO_2)
    with pytest.raises(custom_error("AlgorithmNotAllowed")):
        consume(any_grant, bank_a.org_id, ds_b.dataset_id, ALGO_2)
    consume(any_grant, bank_a.org_id, ds_b.dataset_id, ALGO)
    assert meter.info(any_grant).used == 2
    with pytest.raises(custom_error("GrantExhausted")) as exc:
        consume(any_grant, bank_a.org_id, ds_b.dataset_id, ALGO)
    assert revert_args(exc) == {"grantId": any_grant}

    # a pinned grant covers its algorithm only
    pinned = grantor.grant(ds_b.dataset_id, bank_a.org_id, PURPOSE, not_after, 5, ALGO)
    with pytest.raises(custom_error("AlgorithmNotAllowed")):
        consume(pinned, bank_a.org_id, ds_b.dataset_id, ALGO_2)
    consume(pinned, bank_a.org_id, ds_b.dataset_id, ALGO)

    # notAfter is inclusive
    travel_to(c, not_after)
    consume(pinned, bank_a.org_id, ds_b.dataset_id, ALGO)
    assert meter.info(pinned).used == 2
    with pytest.raises(custom_error("GrantExpired")) as exc:
        consume(pinned, bank_a.org_id, ds_b.dataset_id, ALGO)  # mined at not_after + 1
    assert revert_args(exc) == {"grantId": pinned, "notAfter": not_after}

    grantor.revoke(pinned)
    with pytest.raises(custom_error("GrantIsRevoked")):
        consume(pinned, bank_a.org_id, ds_b.dataset_id, ALGO)
    # the deployment's own registry was never touched
    assert c.orgs["bank-a"].clients.authorizations.is_usable(any_grant) is False


# ------------------------------------------------------------ metering by TaskRegistry


def new_task(
    c: Consortium, name: str, participants: list[Participant], algorithm: bytes = ALGO
) -> bytes:
    request_id = name_id("task", name)
    c.orgs["bank-a"].clients.tasks.create(
        request_id, algorithm, PARAMS, now(c) + HOUR, participants
    )
    return task_id_for(c.orgs["bank-a"].org_id, request_id)


def test_each_acceptance_consumes_exactly_one_use(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, max_uses=3)
    grant_id = setup.grants["bank-b"]
    b = setup.seat("bank-b")
    auth = c.orgs["bank-a"].clients.authorizations
    assert auth.info(grant_id).used == 0
    for n in (1, 2, 3):
        task_id = setup.task_id if n == 1 else new_task(c, f"t{n}", setup.participants)
        # the grantless participant consumes nothing
        a_receipt = setup.seat("bank-a").clients.tasks.accept(task_id)
        assert auth.events_in(a_receipt, "GrantUsed") == []
        assert auth.info(grant_id).used == n - 1
        receipt = b.clients.tasks.accept(task_id)
        assert auth.events_in(receipt, "GrantUsed") == [
            {"grantId": grant_id, "used": n, "maxUses": 3}
        ]
        assert b.clients.tasks.events_in(receipt, "TaskAccepted") == [
            {"taskId": task_id, "node": b.address, "grantId": grant_id}
        ]
        assert auth.info(grant_id).used == n
        assert b.clients.tasks.state(task_id) == TaskState.RUNNING
    assert auth.is_usable(grant_id) is False

    task_id = new_task(c, "t4", setup.participants)
    with pytest.raises(custom_error("GrantExhausted")) as exc:
        b.clients.tasks.accept(task_id)
    assert revert_args(exc) == {"grantId": grant_id}
    assert auth.info(grant_id).used == 3
    assert b.clients.tasks.participant_status(task_id, b.address).accepted is False


def test_two_participants_naming_one_grant_consume_two_uses(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, ("bank-b",), max_uses=2, create=False)
    grant_id = setup.grants["bank-b"]
    ds = setup.datasets["bank-b"]
    extra = add_node(c, "bank-b")
    participants = [
        *setup.participants,
        Participant(extra.address, ds.dataset_id, 1, grant_id),
    ]
    task_id = new_task(c, "shared", participants)
    setup.seat("bank-b").clients.tasks.accept(task_id)
    receipt = extra.clients.tasks.accept(task_id)
    auth = extra.clients.authorizations
    assert auth.events_in(receipt, "GrantUsed") == [{"grantId": grant_id, "used": 2, "maxUses": 2}]
    assert auth.info(grant_id).used == 2
    assert extra.clients.tasks.state(task_id) == TaskState.RUNNING


def test_acceptance_after_grant_expiry_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    ds = setup.datasets["bank-b"]
    not_after = now(c) + 100
    grant_id = make_grant(c, "bank-b", ds.dataset_id, not_after=not_after)
    participants = [Participant(setup.seat("bank-b").address, ds.dataset_id, 1, grant_id)]
    early, late = new_task(c, "early", participants), new_task(c, "late", participants)
    tasks = setup.seat("bank-b").clients.tasks
    travel_to(c, not_after)
    tasks.accept(early)  # mined exactly at notAfter: still valid
    assert tasks.state(early) == TaskState.RUNNING
    with pytest.raises(custom_error("GrantExpired")) as exc:
        tasks.accept(late)
    assert revert_args(exc) == {"grantId": grant_id, "notAfter": not_after}
    assert tasks.state(late) == TaskState.CREATED
    assert c.orgs["bank-a"].clients.authorizations.info(grant_id).used == 1


def test_acceptance_under_revoked_grant_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    grant_id = setup.grants["bank-b"]
    c.orgs["bank-b"].clients.authorizations.revoke(grant_id)
    with pytest.raises(custom_error("GrantIsRevoked")) as exc:
        setup.seat("bank-b").clients.tasks.accept(setup.task_id)
    assert revert_args(exc) == {"grantId": grant_id}
    assert c.orgs["bank-a"].clients.authorizations.info(grant_id).used == 0


def test_acceptance_of_task_by_other_org_than_grantee_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    ds = setup.datasets["bank-b"]
    to_regulator = make_grant(c, "bank-b", ds.dataset_id, "regulator")
    task_id = new_task(
        c, "wrong", [Participant(c.orgs["bank-b"].node.address, ds.dataset_id, 1, to_regulator)]
    )
    with pytest.raises(custom_error("WrongGrantee")) as exc:
        setup.seat("bank-b").clients.tasks.accept(task_id)
    assert revert_args(exc) == {"grantId": to_regulator, "orgId": c.orgs["bank-a"].org_id}


def test_acceptance_with_grant_for_another_dataset_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    bank_b = c.orgs["bank-b"]
    other = register_dataset(bank_b, "bank-b-other")
    grant_other = make_grant(c, "bank-b", other.dataset_id)
    ds = setup.datasets["bank-b"]
    task_id = new_task(
        c, "wrong-ds", [Participant(bank_b.node.address, ds.dataset_id, 1, grant_other)]
    )
    with pytest.raises(custom_error("WrongDataset")) as exc:
        bank_b.node_clients.tasks.accept(task_id)
    assert revert_args(exc) == {"grantId": grant_other, "datasetId": ds.dataset_id}


def test_grant_pinned_to_another_algorithm_is_not_allowed(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    approve_algorithm(c, ALGO_2, "v2")
    ds = setup.datasets["bank-b"]
    pinned_2 = make_grant(c, "bank-b", ds.dataset_id, algorithm=ALGO_2)
    node = c.orgs["bank-b"].node.address
    task_1 = new_task(c, "algo-1", [Participant(node, ds.dataset_id, 1, pinned_2)], ALGO)
    task_2 = new_task(c, "algo-2", [Participant(node, ds.dataset_id, 1, pinned_2)], ALGO_2)
    tasks = c.orgs["bank-b"].node_clients.tasks
    with pytest.raises(custom_error("AlgorithmNotAllowed")) as exc:
        tasks.accept(task_1)
    assert revert_args(exc) == {"grantId": pinned_2, "algorithmDigest": ALGO}
    tasks.accept(task_2)
    assert tasks.state(task_2) == TaskState.RUNNING
    assert tasks.state(task_1) == TaskState.CREATED
    assert c.orgs["bank-a"].clients.authorizations.info(pinned_2).used == 1


def test_any_approved_grant_until_the_algorithm_is_deprecated(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    approve_algorithm(c, ALGO_2, "v2")
    ds = setup.datasets["bank-b"]
    grant_id = make_grant(c, "bank-b", ds.dataset_id, max_uses=5)
    node = c.orgs["bank-b"].node.address
    participants = [Participant(node, ds.dataset_id, 1, grant_id)]
    tasks = c.orgs["bank-b"].node_clients.tasks
    for algo, name in ((ALGO, "any-1"), (ALGO_2, "any-2")):
        task_id = new_task(c, name, participants, algo)
        tasks.accept(task_id)
        assert tasks.state(task_id) == TaskState.RUNNING
    pending = new_task(c, "any-3", participants, ALGO_2)
    deprecate_algorithm(c, ALGO_2)
    with pytest.raises(custom_error("AlgorithmNotApproved")) as exc:
        tasks.accept(pending)
    assert revert_args(exc) == {"digest": ALGO_2}
    with pytest.raises(custom_error("AlgorithmNotApproved")):
        new_task(c, "any-4", participants, ALGO_2)
    assert c.orgs["bank-a"].clients.authorizations.info(grant_id).used == 2
    # still good for the approved one
    tasks.accept(new_task(c, "any-5", participants, ALGO))
    assert c.orgs["bank-a"].clients.authorizations.info(grant_id).used == 3
