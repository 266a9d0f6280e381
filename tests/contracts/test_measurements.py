"""Consortium: enclave measurements trusted and revoked by vote, as a hostile member tries.

An organisation's admin must not be able to declare its own enclave trusted: a node may
carry only a measurement the consortium voted for, one organisation's vote never
carries, and a revocation ends trust from its block on while the history still answers
"was it trusted at block N?" for earlier blocks.
"""

from __future__ import annotations

import pytest
from web3.types import TxReceipt

from ledger.artifacts import abi
from ledger.clients.consortium import (
    MeasurementInfo,
    MeasurementStatus,
    NodeStatus,
    ProposalAction,
    ProposalState,
)
from ledger.clients.measurements import (
    measurement_sets_at,
    measurement_trusted_at,
    read_measurement_sets,
)
from ledger.errors import custom_error
from ledger.events import Event, EventReader, Source
from ledger.ids import name_id
from tests.conftest import Consortium
from tests.contracts.helpers import (  # _fast_senders: autouse fixture
    ZERO32,
    _fast_senders,  # noqa: F401
    revert_args,
    suspend,
)

ENCLAVE = name_id("measurement", "enclave-v1")
ALGORITHM = name_id("algorithm", "tee-stats-v1")


def trust(c: Consortium, measurement: bytes = ENCLAVE) -> tuple[bytes, TxReceipt]:
    """bank-a proposes, bank-b's vote carries (2 of 3); the carrying vote's receipt."""
    proposal = c.orgs["bank-a"].clients.consortium.propose_measurement(measurement, ALGORITHM)
    return proposal, c.orgs["bank-b"].clients.consortium.vote(proposal)


def revoke(c: Consortium, measurement: bytes = ENCLAVE) -> tuple[bytes, TxReceipt]:
    proposal = c.orgs["bank-b"].clients.consortium.propose_measurement_revocation(measurement)
    return proposal, c.orgs["regulator"].clients.consortium.vote(proposal)


def consortium_events(c: Consortium) -> list[Event]:
    address = c.deployment.address("Consortium")
    return EventReader(c.chain, [Source("Consortium", address, abi("Consortium"))]).read()


# ----------------------------------------------------------------- an admin alone


def test_admin_cannot_register_a_node_with_an_untrusted_measurement(c: Consortium) -> None:
    a = c.orgs["bank-a"]
    node = c.new_funded_account()
    with pytest.raises(custom_error("UntrustedMeasurement")) as exc:
        a.clients.consortium.register_node(
            node.address, "a9.example:1", name_id("cert", "9"), ENCLAVE
        )
    assert revert_args(exc) == {"measurement": ENCLAVE}
    assert a.clients.consortium.node_info(node.address).status == NodeStatus.NONE
    assert a.clients.consortium.org_of_account(node.address) == ZERO32


def test_admin_cannot_update_its_node_to_an_untrusted_measurement(c: Consortium) -> None:
    a = c.orgs["bank-a"]
    before = a.clients.consortium.node_info(a.node.address)
    with pytest.raises(custom_error("UntrustedMeasurement")):
        a.clients.consortium.update_node(a.node.address, "a.example:1", name_id("c", "x"), ENCLAVE)
    assert a.clients.consortium.node_info(a.node.address) == before


def test_one_organisations_vote_does_not_trust_a_measurement(c: Consortium) -> None:
    a = c.orgs["bank-a"].clients.consortium
    proposal = a.propose_measurement(ENCLAVE, ALGORITHM)
    assert a.proposal_state(proposal) == ProposalState.VOTING
    assert not a.is_measurement_trusted(ENCLAVE)
    assert a.measurement_info(ENCLAVE) == MeasurementInfo(MeasurementStatus.NONE, ZERO32)
    with pytest.raises(custom_error("AlreadyVoted")):
        a.vote(proposal)
    # nor by proposing it again, nor by its node account voting
    with pytest.raises(custom_error("MeasurementProposalPending")) as exc:
        a.propose_measurement(ENCLAVE, ALGORITHM)
    assert revert_args(exc) == {"measurement": ENCLAVE, "proposalId": proposal}
    with pytest.raises(custom_error("NotActiveMemberAdmin")):
        c.orgs["bank-a"].node_clients.consortium.vote(proposal)
    with pytest.raises(custom_error("UntrustedMeasurement")):
        a.register_node(c.new_funded_account().address, "x:1", name_id("c", "y"), ENCLAVE)
    assert a.open_measurement_proposal(ENCLAVE) == proposal


def test_only_active_admins_propose(c: Consortium) -> None:
    node = c.orgs["bank-a"].node_clients.consortium
    with pytest.raises(custom_error("NotActiveMemberAdmin")):
        node.propose_measurement(ENCLAVE, ALGORITHM)
    suspend(c, "bank-b")
    with pytest.raises(custom_error("NotActiveMemberAdmin")):
        c.orgs["bank-b"].clients.consortium.propose_measurement(ENCLAVE, ALGORITHM)


def test_zero_measurement_or_digest_is_refused(c: Consortium) -> None:
    a = c.orgs["bank-a"].clients.consortium
    with pytest.raises(custom_error("InvalidMeasurement")):
        a.propose_measurement(ZERO32, ALGORITHM)
    with pytest.raises(custom_error("InvalidAlgorithmDigest")):
        a.propose_measurement(ENCLAVE, ZERO32)


def test_a_vetoed_proposal_trusts_nothing_and_frees_the_measurement(c: Consortium) -> None:
    a = c.orgs["bank-a"].clients.consortium
    proposal = a.propose_measurement(ENCLAVE, ALGORITHM)
    c.orgs["regulator"].clients.consortium.veto(proposal)
    with pytest.raises(custom_error("ProposalNotOpen")):
        c.orgs["bank-b"].clients.consortium.vote(proposal)
    assert not a.is_measurement_trusted(ENCLAVE)
    again = a.propose_measurement(ENCLAVE, ALGORITHM)
    assert again != proposal


# ------------------------------------------------------------------- by the vote


def test_trusted_by_vote_with_every_event_field(c: Consortium) -> None:
    a = c.orgs["bank-a"].clients.consortium
    proposal = a.propose_measurement(ENCLAVE, ALGORITHM)
    receipt_proposal = c.chain.w3.eth.get_transaction_receipt(
        c.chain.w3.eth.get_block("latest")["transactions"][-1]
    )
    (proposed,) = a.events_in(receipt_proposal, "MeasurementProposed")
    assert proposed == {
        "proposalId": proposal,
        "action": ProposalAction.TRUST_MEASUREMENT,
        "measurement": ENCLAVE,
        "algorithmDigest": ALGORITHM,
        "proposerOrg": c.orgs["bank-a"].org_id,
        "expiresAt": a.ballot(proposal).expires_at,
    }
    assert a.events_in(receipt_proposal, "ProposalCreated") == []  # not about an organisation
    assert a.proposal_subject(proposal) == (3, ENCLAVE, 0, "0x" + "00" * 20)
    receipt = c.orgs["bank-b"].clients.consortium.vote(proposal)
    assert a.events_in(receipt, "MeasurementTrusted") == [
        {"measurement": ENCLAVE, "algorithmDigest": ALGORITHM, "proposalId": proposal}
    ]
    assert a.is_measurement_trusted(ENCLAVE)
    assert a.measurement_info(ENCLAVE) == MeasurementInfo(MeasurementStatus.TRUSTED, ALGORITHM)
    assert a.open_measurement_proposal(ENCLAVE) == ZERO32
    # now an admin may declare it
    node = c.new_funded_account()
    a.register_node(node.address, "a9.example:1", name_id("cert", "9"), ENCLAVE)
    assert a.node_info(node.address).tee_measurement == ENCLAVE
    with pytest.raises(custom_error("MeasurementAlreadyKnown")) as exc:
        a.propose_measurement(ENCLAVE, ALGORITHM)
    assert revert_args(exc) == {"measurement": ENCLAVE, "status": MeasurementStatus.TRUSTED}


def test_revoked_measurement_is_untrusted_after_its_block_only(c: Consortium) -> None:
    a = c.orgs["bank-a"].clients.consortium
    _, trusted_receipt = trust(c)
    trusted_at = int(trusted_receipt["blockNumber"])
    a.update_node(c.orgs["bank-a"].node.address, "a.example:7000", name_id("c", "a"), ENCLAVE)
    with pytest.raises(custom_error("UntrustedMeasurement")):
        a.propose_measurement_revocation(name_id("measurement", "never-trusted"))
    revocation, revoked_receipt = revoke(c)
    revoked_at = int(revoked_receipt["blockNumber"])
    assert a.events_in(revoked_receipt, "MeasurementRevoked") == [
        {"measurement": ENCLAVE, "algorithmDigest": ALGORITHM, "proposalId": revocation}
    ]
    assert a.proposal_subject(revocation)[:2] == (ProposalAction.REVOKE_MEASUREMENT, ENCLAVE)
    assert not a.is_measurement_trusted(ENCLAVE)
    assert a.measurement_info(ENCLAVE) == MeasurementInfo(MeasurementStatus.REVOKED, ALGORITHM)

    # the history answers for any block, from events alone
    events = consortium_events(c)
    assert not measurement_trusted_at(events, ENCLAVE, trusted_at - 1)
    assert measurement_trusted_at(events, ENCLAVE, trusted_at)
    assert measurement_trusted_at(events, ENCLAVE, revoked_at - 1)
    assert not measurement_trusted_at(events, ENCLAVE, revoked_at)
    sets = measurement_sets_at(events, revoked_at)
    assert sets.revoked == frozenset({ENCLAVE}) and sets.trusted == frozenset()
    assert measurement_sets_at(events, trusted_at).algorithm_digests == {ENCLAVE: ALGORITHM}
    address = c.deployment.address("Consortium")
    assert read_measurement_sets(c.chain, address, trusted_at).trusted == frozenset({ENCLAVE})
    assert read_measurement_sets(c.chain, address).revoked == frozenset({ENCLAVE})

    # revocation is final, and nobody may keep or declare the revoked measurement
    with pytest.raises(custom_error("MeasurementAlreadyKnown")) as exc:
        a.propose_measurement(ENCLAVE, ALGORITHM)
    assert revert_args(exc)["status"] == MeasurementStatus.REVOKED
    with pytest.raises(custom_error("UntrustedMeasurement")):
        a.propose_measurement_revocation(ENCLAVE)
    node = c.orgs["bank-a"].node.address
    assert a.node_info(node).tee_measurement == ENCLAVE  # recorded, no longer trusted
    with pytest.raises(custom_error("UntrustedMeasurement")):
        a.update_node(node, "a.example:7001", name_id("c", "a"), ENCLAVE)
    with pytest.raises(custom_error("UntrustedMeasurement")):
        a.register_node(c.new_funded_account().address, "x:1", name_id("c", "z"), ENCLAVE)
    a.update_node(node, "a.example:7001", name_id("c", "a"))  # clearing it is allowed
    assert a.node_info(node).tee_measurement == ZERO32


def test_one_organisation_cannot_revoke_alone(c: Consortium) -> None:
    trust(c)
    b = c.orgs["bank-b"].clients.consortium
    proposal = b.propose_measurement_revocation(ENCLAVE)
    assert b.is_measurement_trusted(ENCLAVE)
    with pytest.raises(custom_error("MeasurementProposalPending")):
        c.orgs["bank-b"].clients.consortium.propose_measurement_revocation(ENCLAVE)
    assert b.proposal_state(proposal) == ProposalState.VOTING


@pytest.fixture
def c(consortium: Consortium) -> Consortium:
    return consortium
