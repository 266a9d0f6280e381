"""DatasetRegistry: datasets of PROVIDER organisations, append-only versions, retirement."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.clients.datasets import DatasetRegistryClient, DatasetVersion, VersionCommitment
from ledger.ids import InvalidInput, dataset_id_for, name_id
from ledger.roles import Role
from tests.conftest import Consortium, Org
from tests.contracts.test_consortium import (
    ZERO32,
    admit,
    propose,
    reinstate,
    reverts,
    suspend,
)

NAME = name_id("dataset", "transactions-2024")  # the name an org registers the dataset under
PROVIDER = int(Role.PROVIDER)


def ds_id(org: Org, name: bytes = NAME) -> bytes:
    """The id `org` gets when it registers `name`: namespaced by the org on chain."""
    return dataset_id_for(org.org_id, name)


def _version(n: int, classification: int = 2, rows: int = 1000) -> DatasetVersion:
    return DatasetVersion(
        name_id("root", str(n)), rows + n, name_id("schema", str(n)), classification
    )


def _raw(client: DatasetRegistryClient, fn: str, dataset_id: bytes, v: DatasetVersion) -> object:
    """Send without the client's own classification check, to reach the contract's."""
    return client._transact(
        fn, dataset_id, v.merkle_root, v.row_count, v.schema_digest, v.classification, ""
    )


def test_register_dataset(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    DS = ds_id(a)
    r = a.clients.datasets
    v1 = _version(1, classification=3)
    receipt = r.register(NAME, v1, "https://bank-a.example/ds/1")
    assert r.events_in(receipt, "DatasetRegistered") == [
        {"datasetId": DS, "ownerOrg": a.org_id, "name": NAME}
    ]
    assert r.events_in(receipt, "DatasetVersionAdded") == [
        {
            "datasetId": DS,
            "version": 1,
            "merkleRoot": v1.merkle_root,
            "rowCount": v1.row_count,
            "schemaDigest": v1.schema_digest,
            "classification": 3,
            "metadataURI": "https://bank-a.example/ds/1",
        }
    ]
    assert r.owner(DS) == a.org_id
    assert r.latest_version(DS) == 1
    assert r.version_info(DS, 1) == v1
    assert r.version_commitment(DS, 1) == VersionCommitment(a.org_id, v1.merkle_root, False)
    assert not r.is_retired(DS)


def test_a_node_registers_for_its_org(consortium: Consortium) -> None:
    reg = consortium.orgs["regulator"]  # REGULATOR | PROVIDER
    DS = ds_id(reg)
    r = reg.node_clients.datasets
    receipt = r.register(NAME, _version(1))
    assert r.events_in(receipt, "DatasetRegistered") == [
        {"datasetId": DS, "ownerOrg": reg.org_id, "name": NAME}
    ]
    assert r.owner(DS) == reg.org_id
    # the organisation's admin and its node both own it
    assert reg.clients.datasets.add_version(DS, _version(2)) == 2
    assert reg.node_clients.datasets.add_version(DS, _version(3)) == 3


def test_versions_are_append_only(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    DS = ds_id(a)
    r = a.clients.datasets
    r.register(NAME, _version(1, classification=1))
    for n, level in ((2, 2), (3, 4), (4, 3)):
        v = _version(n, classification=level)
        assert r.add_version(DS, v, f"uri-{n}") == n
        receipt = consortium.chain.w3.eth.get_transaction_receipt(
            consortium.chain.w3.eth.get_block("latest")["transactions"][-1]
        )
        assert r.events_in(receipt, "DatasetVersionAdded") == [
            {
                "datasetId": DS,
                "version": n,
                "merkleRoot": v.merkle_root,
                "rowCount": v.row_count,
                "schemaDigest": v.schema_digest,
                "classification": level,
                "metadataURI": f"uri-{n}",
            }
        ]
        assert r.events_in(receipt, "DatasetRegistered") == []
        assert r.latest_version(DS) == n
    # every earlier version is still readable, unchanged
    for n, level in ((1, 1), (2, 2), (3, 4), (4, 3)):
        assert r.version_info(DS, n) == _version(n, classification=level)
        assert r.version_commitment(DS, n) == VersionCommitment(
            a.org_id, name_id("root", str(n)), False
        )
    assert r.owner(DS) == a.org_id


def test_row_count_bounds_and_empty_uri(consortium: Consortium) -> None:
    DS = ds_id(consortium.orgs["bank-a"])
    r = consortium.orgs["bank-a"].clients.datasets
    empty = DatasetVersion(name_id("root", "e"), 0, name_id("schema", "e"), 4)
    full = DatasetVersion(name_id("root", "f"), 2**64 - 1, name_id("schema", "f"), 1)
    r.register(NAME, empty)
    assert r.add_version(DS, full) == 2
    assert r.version_info(DS, 1) == empty
    assert r.version_info(DS, 2) == full


def test_retire_dataset(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    DS = ds_id(a)
    r = a.clients.datasets
    r.register(NAME, _version(1))
    r.add_version(DS, _version(2))
    receipt = a.node_clients.datasets.retire(DS)
    assert r.events_in(receipt, "DatasetRetired") == [{"datasetId": DS}]
    assert r.is_retired(DS)
    assert r.latest_version(DS) == 2
    for n in (1, 2):
        assert r.version_info(DS, n) == _version(n)
        assert r.version_commitment(DS, n) == VersionCommitment(
            a.org_id, name_id("root", str(n)), True
        )
    # retirement is final: no new version, no second retirement, the id stays taken
    for clients in (a.clients, a.node_clients):
        assert reverts("DatasetIsRetired", clients.datasets.add_version, DS, _version(3)) == {
            "datasetId": DS
        }
        assert reverts("DatasetIsRetired", clients.datasets.retire, DS) == {"datasetId": DS}
    assert reverts("DatasetAlreadyExists", r.register, NAME, _version(1)) == {"datasetId": DS}
    assert r.latest_version(DS) == 2


def test_register_argument_checks(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    DS = ds_id(a)
    r = a.clients.datasets
    assert reverts("InvalidDatasetName", r.register, ZERO32, _version(1)) == {}
    no_root = DatasetVersion(ZERO32, 1, name_id("schema", "x"), 1)
    no_schema = DatasetVersion(name_id("root", "x"), 1, ZERO32, 1)
    for bad in (no_root, no_schema):
        assert reverts("InvalidCommitment", r.register, NAME, bad) == {}
    for level in (0, 5, 255):
        assert reverts(
            "InvalidClassification", _raw, r, "registerDataset", NAME, _version(1, level)
        ) == {"classification": level}
    assert r.latest_version(DS) == 0
    r.register(NAME, _version(1))
    for clients in (a.clients, a.node_clients):
        assert reverts("DatasetAlreadyExists", clients.datasets.register, NAME, _version(9)) == {
            "datasetId": DS
        }
    assert r.version_info(DS, 1) == _version(1)


def test_dataset_id_is_derived_from_the_owner_org_and_name(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    r = a.clients.datasets
    assert r.dataset_id_for(a.org_id, NAME) == ds_id(a) == r.dataset_id_on_chain(a.org_id, NAME)
    assert r.dataset_id_on_chain(b.org_id, NAME) == ds_id(b) != ds_id(a)


def test_another_org_cannot_take_a_dataset_name_first(consortium: Consortium) -> None:
    """bank-b registers bank-a's dataset name first: it gets a dataset of its own, and
    bank-a's registration under that name still succeeds, owned by bank-a."""
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    squat = b.node_clients.datasets.register(NAME, _version(7))
    assert b.clients.datasets.events_in(squat, "DatasetRegistered") == [
        {"datasetId": ds_id(b), "ownerOrg": b.org_id, "name": NAME}
    ]
    r = a.node_clients.datasets
    assert r.latest_version(ds_id(a)) == 0
    receipt = r.register(NAME, _version(1))
    assert r.events_in(receipt, "DatasetRegistered") == [
        {"datasetId": ds_id(a), "ownerOrg": a.org_id, "name": NAME}
    ]
    assert r.owner(ds_id(a)) == a.org_id
    assert r.version_info(ds_id(a), 1) == _version(1)
    assert r.owner(ds_id(b)) == b.org_id
    assert r.version_info(ds_id(b), 1) == _version(7)
    # neither can add versions to the other's
    assert reverts("NotDatasetOwner", b.clients.datasets.add_version, ds_id(a), _version(2)) == {
        "datasetId": ds_id(a),
        "orgId": b.org_id,
    }


@pytest.mark.parametrize("level", [0, 5])
def test_client_rejects_classification_before_sending(consortium: Consortium, level: int) -> None:
    DS = ds_id(consortium.orgs["bank-a"])
    r = consortium.orgs["bank-a"].clients.datasets
    r.register(NAME, _version(1))
    block = consortium.chain.head()
    with pytest.raises(InvalidInput) as exc:
        r.register(name_id("dataset", "other"), _version(2, level))
    assert exc.value.field == "classification"
    with pytest.raises(InvalidInput) as exc:
        r.add_version(DS, _version(2, level))
    assert exc.value.field == "classification"
    assert consortium.chain.head() == block


def test_register_requires_the_provider_role(consortium: Consortium) -> None:
    consumer = admit(consortium, "consumer-only")  # CONSUMER, with a node
    DS = ds_id(consumer)
    for clients in (consumer.clients, consumer.node_clients):
        assert reverts("MissingRole", clients.datasets.register, NAME, _version(1)) == {
            "orgId": consumer.org_id,
            "role": PROVIDER,
        }
    assert consumer.clients.datasets.latest_version(DS) == 0


@pytest.mark.parametrize(
    "caller", ["outsider", "proposed-admin", "suspended-admin", "suspended-node", "revoked-node"]
)
def test_every_mutation_requires_an_active_member(consortium: Consortium, caller: str) -> None:
    b = consortium.orgs["bank-b"]
    owned = ds_id(b, name_id("dataset", "bank-b"))
    b.clients.datasets.register(name_id("dataset", "bank-b"), _version(1))
    if caller == "outsider":
        account = consortium.new_funded_account()
    elif caller == "proposed-admin":
        account = propose(consortium, "bank-d", PROVIDER)[0].admin
    elif caller == "suspended-admin":
        suspend(consortium, "bank-b", "bank-a")
        account = b.admin
    elif caller == "suspended-node":
        suspend(consortium, "bank-b", "bank-a")
        account = b.node
    else:
        b.clients.consortium.revoke_node(b.node.address)
        account = b.node
    r = consortium.clients_for(account).datasets
    who = {"account": account.address}
    assert reverts("NotActiveMember", r.register, NAME, _version(1)) == who
    assert reverts("NotActiveMember", r.add_version, owned, _version(2)) == who
    assert reverts("NotActiveMember", r.retire, owned) == who
    assert r.latest_version(ds_id(b)) == 0
    assert r.latest_version(owned) == 1
    assert not r.is_retired(owned)


def test_reinstated_owner_may_add_versions_again(consortium: Consortium) -> None:
    b = consortium.orgs["bank-b"]
    DS = ds_id(b)
    b.node_clients.datasets.register(NAME, _version(1))
    suspend(consortium, "bank-b", "bank-a")
    reinstate(consortium, "bank-b", "bank-a")
    assert b.node_clients.datasets.add_version(DS, _version(2)) == 2


def test_add_version_reverts(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    DS = ds_id(a)
    r = a.clients.datasets
    unknown = name_id("dataset", "unknown")
    assert reverts("UnknownDataset", r.add_version, unknown, _version(1)) == {"datasetId": unknown}
    r.register(NAME, _version(1))
    for clients in (b.clients, b.node_clients):
        assert reverts("NotDatasetOwner", clients.datasets.add_version, DS, _version(2)) == {
            "datasetId": DS,
            "orgId": b.org_id,
        }
    for bad in (
        DatasetVersion(ZERO32, 1, name_id("schema", "x"), 1),
        DatasetVersion(name_id("root", "x"), 1, ZERO32, 1),
    ):
        assert reverts("InvalidCommitment", r.add_version, DS, bad) == {}
    for level in (0, 5):
        assert reverts("InvalidClassification", _raw, r, "addVersion", DS, _version(2, level)) == {
            "classification": level
        }
    assert r.latest_version(DS) == 1


def test_retire_reverts(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    DS = ds_id(a)
    unknown = name_id("dataset", "unknown")
    assert reverts("UnknownDataset", a.clients.datasets.retire, unknown) == {"datasetId": unknown}
    a.clients.datasets.register(NAME, _version(1))
    for clients in (b.clients, b.node_clients):
        assert reverts("NotDatasetOwner", clients.datasets.retire, DS) == {
            "datasetId": DS,
            "orgId": b.org_id,
        }
    assert not a.clients.datasets.is_retired(DS)


def test_views_of_unknown_datasets_and_versions(consortium: Consortium) -> None:
    DS = ds_id(consortium.orgs["bank-a"])
    r = consortium.orgs["bank-a"].clients.datasets
    unknown = name_id("dataset", "unknown")
    assert reverts("UnknownDataset", r.owner, unknown) == {"datasetId": unknown}
    assert r.latest_version(unknown) == 0
    assert not r.is_retired(unknown)
    for fn in (r.version_info, r.version_commitment):
        assert reverts("UnknownDatasetVersion", fn, unknown, 1) == {
            "datasetId": unknown,
            "version": 1,
        }
    r.register(NAME, _version(1))
    r.add_version(DS, _version(2))
    for version in (0, 3, 2**32 - 1):
        for fn in (r.version_info, r.version_commitment):
            assert reverts("UnknownDatasetVersion", fn, DS, version) == {
                "datasetId": DS,
                "version": version,
            }


_dataset_ids = (name_id("dataset", f"prop-{i}") for i in itertools.count())

_versions = st.builds(
    DatasetVersion,
    st.binary(min_size=32, max_size=32).filter(any),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32).filter(any),
    st.integers(1, 4),
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(versions=st.lists(_versions, min_size=1, max_size=4))
def test_any_sequence_of_versions_is_kept_in_order(
    consortium: Consortium, versions: list[DatasetVersion]
) -> None:
    r = consortium.orgs["bank-a"].clients.datasets
    name = next(_dataset_ids)  # fresh per example: the snapshot is per test
    dataset_id = ds_id(consortium.orgs["bank-a"], name)
    r.register(name, versions[0])
    for n, v in enumerate(versions[1:], start=2):
        assert r.add_version(dataset_id, v) == n
    assert r.latest_version(dataset_id) == len(versions)
    assert [r.version_info(dataset_id, n) for n in range(1, len(versions) + 1)] == versions
