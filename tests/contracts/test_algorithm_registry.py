"""AlgorithmRegistry: approval and deprecation of algorithm digests by consortium vote.

The ballots are `ConsortiumVoting`'s, with the settings and electorate of `Consortium`:
the session consortium has no timelock (the carrying vote executes); the timelock,
objections, vetoes and expiry are exercised on a second, timelocked deployment.
"""

from __future__ import annotations

import pytest

from ledger.clients.algorithms import AlgorithmKind, AlgorithmStatus
from ledger.clients.consortium import ProposalState
from ledger.errors import UnknownRevert
from ledger.ids import name_id
from tests.conftest import Consortium
from tests.contracts.test_consortium import (
    ZERO32,
    admit,
    last_receipt,
    now,
    propose,
    reverts,
    suspend,
    timelocked,
    travel_to,
)

DIGEST = name_id("algorithm", "psi-ecdh-v1")


def _approved(consortium: Consortium, digest: bytes = DIGEST) -> None:
    consortium.orgs["bank-a"].clients.algorithms.propose(digest, "psi", "1", AlgorithmKind.PSI)
    consortium.orgs["bank-b"].clients.algorithms.approve(digest)
    assert consortium.orgs["bank-a"].clients.algorithms.is_approved(digest)


def test_proposal_then_approval_by_vote(consortium: Consortium) -> None:
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    r = a.clients.algorithms
    receipt = r.propose(DIGEST, "psi-ecdh", "1.0.0", AlgorithmKind.PSI)
    proposal = r.latest_proposal(DIGEST)
    assert r.events_in(receipt, "AlgorithmProposed") == [
        {
            "digest": DIGEST,
            "name": "psi-ecdh",
            "version": "1.0.0",
            "kind": int(AlgorithmKind.PSI),
            "proposerOrg": a.org_id,
            "proposalId": proposal,
        }
    ]
    # 3 members at 50 %: 2 votes needed, the proposer's alone is never enough
    assert r.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
    ]
    assert r.proposal_state(proposal) == ProposalState.VOTING
    assert r.events_in(receipt, "AlgorithmApproved") == []
    assert r.status(DIGEST) == AlgorithmStatus.PROPOSED
    assert not r.is_approved(DIGEST)
    assert r.kind(DIGEST) == AlgorithmKind.PSI
    assert r.votes(DIGEST) == (1, 0)
    assert r.has_voted(DIGEST, a.org_id, False)
    assert not r.has_voted(DIGEST, a.org_id, True)
    assert not r.has_voted(DIGEST, b.org_id, False)

    receipt = b.clients.algorithms.approve(DIGEST)
    assert r.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": b.org_id, "votes": 2, "required": 2}
    ]
    assert r.events_in(receipt, "ProposalExecuted") == [{"proposalId": proposal}]
    assert r.events_in(receipt, "AlgorithmApproved") == [{"digest": DIGEST}]
    assert r.proposal_state(proposal) == ProposalState.EXECUTED
    assert r.status(DIGEST) == AlgorithmStatus.APPROVED
    assert r.is_approved(DIGEST)
    assert r.votes(DIGEST) == (2, 0)
    assert r.has_voted(DIGEST, b.org_id, False)
    # approval is decided: a late vote is refused
    assert reverts("AlgorithmNotProposed", reg.clients.algorithms.approve, DIGEST) == {
        "digest": DIGEST
    }


def test_every_kind_is_stored(consortium: Consortium) -> None:
    r = consortium.orgs["bank-a"].clients.algorithms
    for kind in AlgorithmKind:
        digest = name_id("algorithm", kind.name)
        receipt = r.propose(digest, kind.name, "1", kind)
        assert r.events_in(receipt, "AlgorithmProposed")[0]["kind"] == int(kind)
        assert r.kind(digest) == kind
    # an out-of-range kind fails ABI decoding in the contract: a revert without data
    with pytest.raises(UnknownRevert) as exc:
        r._transact("proposeAlgorithm", name_id("algorithm", "bad"), "x", "1", 6)
    assert exc.value.data == b""
    assert r.status(name_id("algorithm", "bad")) == AlgorithmStatus.NONE


def test_unknown_algorithm_views(consortium: Consortium) -> None:
    r = consortium.orgs["bank-a"].clients.algorithms
    assert r.status(DIGEST) == AlgorithmStatus.NONE
    assert not r.is_approved(DIGEST)
    assert r.kind(DIGEST) == AlgorithmKind.PSI
    assert r.votes(DIGEST) == (0, 0)
    assert not r.has_voted(DIGEST, consortium.orgs["bank-a"].org_id, False)
    assert not r.has_voted(DIGEST, consortium.orgs["bank-a"].org_id, True)
    assert r.latest_proposal(DIGEST) == ZERO32
    assert r.required_votes() == 2


def test_propose_reverts(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    r = a.clients.algorithms
    assert reverts("InvalidDigest", r.propose, ZERO32, "x", "1", AlgorithmKind.MPC) == {}
    r.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    for proposer in ("bank-a", "bank-b"):  # Proposed: taken, whoever asks
        again = consortium.orgs[proposer].clients.algorithms
        assert reverts(
            "AlgorithmAlreadyExists", again.propose, DIGEST, "y", "2", AlgorithmKind.FL
        ) == {"digest": DIGEST}
    consortium.orgs["bank-b"].clients.algorithms.approve(DIGEST)
    assert reverts("AlgorithmAlreadyExists", r.propose, DIGEST, "y", "2", AlgorithmKind.FL) == {
        "digest": DIGEST
    }
    assert r.kind(DIGEST) == AlgorithmKind.PSI  # unchanged


@pytest.mark.parametrize("caller", ["outsider", "node", "proposed-admin", "suspended-admin"])
def test_every_mutation_requires_an_active_admin(consortium: Consortium, caller: str) -> None:
    proposed = name_id("algorithm", "proposed")
    consortium.orgs["bank-a"].clients.algorithms.propose(proposed, "p", "1", AlgorithmKind.PIR)
    _approved(consortium)
    consortium.orgs["bank-a"].clients.algorithms.propose_deprecation(DIGEST)
    if caller == "outsider":
        account = consortium.new_funded_account()
    elif caller == "node":
        account = consortium.orgs["bank-b"].node
    elif caller == "proposed-admin":
        account = propose(consortium, "bank-d")[0].admin
    else:
        suspend(consortium, "bank-b", "bank-a")
        account = consortium.orgs["bank-b"].admin
    r = consortium.clients_for(account).algorithms
    who = {"account": account.address}
    new = name_id("algorithm", "new")
    assert reverts("NotActiveMemberAdmin", r.propose, new, "n", "1", AlgorithmKind.TEE) == who
    assert reverts("NotActiveMemberAdmin", r.approve, proposed) == who
    assert reverts("NotActiveMemberAdmin", r.propose_deprecation, DIGEST) == who
    assert reverts("NotActiveMemberAdmin", r.vote_deprecation, DIGEST) == who
    assert r.status(new) == AlgorithmStatus.NONE
    assert r.votes(proposed) == (1, 0)
    assert r.votes(DIGEST) == (2, 1)


def test_approve_reverts(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    unknown = name_id("algorithm", "unknown")
    assert reverts("AlgorithmNotProposed", b.clients.algorithms.approve, unknown) == {
        "digest": unknown
    }
    a.clients.algorithms.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    assert reverts("AlreadyVoted", a.clients.algorithms.approve, DIGEST) == {
        "digest": DIGEST,
        "orgId": a.org_id,
    }
    assert a.clients.algorithms.votes(DIGEST) == (1, 0)
    b.clients.algorithms.approve(DIGEST)
    for voter in (a, b):
        assert reverts("AlgorithmNotProposed", voter.clients.algorithms.approve, DIGEST) == {
            "digest": DIGEST
        }


def test_deprecation_by_vote(consortium: Consortium) -> None:
    a, b, reg = (consortium.orgs[n] for n in ("bank-a", "bank-b", "regulator"))
    _approved(consortium)
    r = a.clients.algorithms
    # approving and deprecating are separate questions: bank-a votes on both
    receipt = r.propose_deprecation(DIGEST)
    proposal = r.latest_proposal(DIGEST)
    assert r.events_in(receipt, "DeprecationProposed") == [
        {"digest": DIGEST, "proposerOrg": a.org_id, "proposalId": proposal}
    ]
    assert r.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": a.org_id, "votes": 1, "required": 2}
    ]
    assert r.events_in(receipt, "AlgorithmDeprecated") == []
    assert r.status(DIGEST) == AlgorithmStatus.APPROVED
    assert r.is_approved(DIGEST)
    assert r.votes(DIGEST) == (2, 1)
    assert r.has_voted(DIGEST, a.org_id, True)
    assert not r.has_voted(DIGEST, reg.org_id, True)

    receipt = reg.clients.algorithms.vote_deprecation(DIGEST)
    assert r.events_in(receipt, "VoteCast") == [
        {"proposalId": proposal, "voterOrg": reg.org_id, "votes": 2, "required": 2}
    ]
    assert r.events_in(receipt, "AlgorithmDeprecated") == [{"digest": DIGEST}]
    assert r.status(DIGEST) == AlgorithmStatus.DEPRECATED
    assert not r.is_approved(DIGEST)
    assert r.votes(DIGEST) == (2, 2)
    # deprecation is final
    for fn in (b.clients.algorithms.vote_deprecation, b.clients.algorithms.propose_deprecation):
        assert reverts("AlgorithmNotApproved", fn, DIGEST) == {"digest": DIGEST}
    assert reverts("AlgorithmNotProposed", b.clients.algorithms.approve, DIGEST) == {
        "digest": DIGEST
    }
    assert reverts(
        "AlgorithmAlreadyExists",
        b.clients.algorithms.propose,
        DIGEST,
        "psi",
        "2",
        AlgorithmKind.PSI,
    ) == {"digest": DIGEST}


def test_deprecation_reverts(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    r = a.clients.algorithms
    unknown, proposed = name_id("algorithm", "unknown"), name_id("algorithm", "proposed")
    r.propose(proposed, "p", "1", AlgorithmKind.PIR)
    for digest in (unknown, proposed):
        for fn in (r.propose_deprecation, r.vote_deprecation):
            assert reverts("AlgorithmNotApproved", fn, digest) == {"digest": digest}
    _approved(consortium)
    assert reverts("DeprecationNotProposed", b.clients.algorithms.vote_deprecation, DIGEST) == {
        "digest": DIGEST
    }
    r.propose_deprecation(DIGEST)
    for proposer in (a, b):
        assert reverts(
            "DeprecationAlreadyProposed", proposer.clients.algorithms.propose_deprecation, DIGEST
        ) == {"digest": DIGEST}
    assert reverts("AlreadyVoted", r.vote_deprecation, DIGEST) == {
        "digest": DIGEST,
        "orgId": a.org_id,
    }
    assert r.votes(DIGEST) == (2, 1)
    assert r.status(DIGEST) == AlgorithmStatus.APPROVED


def test_suspending_members_does_not_lower_the_bar(consortium: Consortium) -> None:
    """Attack 1: bank-a cannot suspend the regulator alone, and suspending it needs bank-b
    too; even then the regulator still counts, so bank-a still cannot approve alone."""
    r = consortium.orgs["bank-a"].clients.algorithms
    suspend(consortium, "regulator", "bank-a", "bank-b")
    receipt = r.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    assert r.events_in(receipt, "VoteCast")[0]["required"] == 2
    assert r.events_in(receipt, "AlgorithmApproved") == []
    assert not r.is_approved(DIGEST)
    consortium.orgs["bank-b"].clients.algorithms.approve(DIGEST)
    assert r.is_approved(DIGEST)


def test_admitted_org_votes_and_raises_the_bar(consortium: Consortium) -> None:
    d = admit(consortium, "bank-d", node=False)  # 4 members: ceil(4 * 50 %) = 2
    r = d.clients.algorithms
    receipt = r.propose(DIGEST, "fl", "1", AlgorithmKind.FL)
    assert r.events_in(receipt, "VoteCast") == [
        {
            "proposalId": r.latest_proposal(DIGEST),
            "voterOrg": d.org_id,
            "votes": 1,
            "required": 2,
        }
    ]
    assert r.events_in(receipt, "AlgorithmProposed")[0]["proposerOrg"] == d.org_id
    assert not r.is_approved(DIGEST)


# ------------------------------------------------------------------------ timelock


def test_approval_waits_for_the_timelock_and_execute(consortium: Consortium) -> None:
    g = timelocked(consortium)
    a, b = g.clients["bank-a"].algorithms, g.clients["bank-b"].algorithms
    a.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    proposal = a.latest_proposal(DIGEST)
    receipt = b.approve(DIGEST)
    eta = now(consortium) + 86_400
    assert a.events_in(receipt, "ProposalQueued")[0]["eta"] == eta
    assert a.events_in(receipt, "AlgorithmApproved") == []
    assert not a.is_approved(DIGEST)
    assert reverts("TimelockNotElapsed", b.execute, proposal) == {
        "proposalId": proposal,
        "eta": eta,
    }
    travel_to(consortium, eta)
    receipt = g.clients["regulator"].algorithms.execute(proposal)
    assert a.events_in(receipt, "AlgorithmApproved") == [{"digest": DIGEST}]
    assert a.is_approved(DIGEST)
    assert a.votes(DIGEST) == (2, 0)


def test_regulator_veto_drops_an_approval(consortium: Consortium) -> None:
    g = timelocked(consortium)
    a, b, reg = (g.clients[n].algorithms for n in ("bank-a", "bank-b", "regulator"))
    a.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    proposal = a.latest_proposal(DIGEST)
    b.approve(DIGEST)
    for bank, name in ((a, "bank-a"), (b, "bank-b")):
        assert reverts("NotRegulator", bank.veto, proposal) == {"orgId": g.org_ids[name]}
    receipt = reg.veto(proposal)
    assert a.events_in(receipt, "ProposalVetoed") == [
        {"proposalId": proposal, "regulatorOrg": g.org_ids["regulator"]}
    ]
    assert a.events_in(receipt, "AlgorithmProposalDropped") == [{"digest": DIGEST}]
    assert a.status(DIGEST) == AlgorithmStatus.NONE
    travel_to(consortium, a.ballot(proposal).eta)
    assert reverts("ProposalNotOpen", a.execute, proposal) == {
        "proposalId": proposal,
        "state": ProposalState.VETOED,
    }
    assert not a.is_approved(DIGEST)
    a.propose(DIGEST, "psi", "2", AlgorithmKind.PSI)  # the digest is free again
    assert a.latest_proposal(DIGEST) != proposal


def test_objections_cancel_a_deprecation(consortium: Consortium) -> None:
    g = timelocked(consortium, extra=1)  # 4 members: objections cancel at minApprovals = 2
    a, b, reg, o = (g.clients[n].algorithms for n in ("bank-a", "bank-b", "regulator", "bank-0"))
    a.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    b.approve(DIGEST)
    travel_to(consortium, a.ballot(a.latest_proposal(DIGEST)).eta)
    a.execute(a.latest_proposal(DIGEST))
    a.propose_deprecation(DIGEST)
    proposal = a.latest_proposal(DIGEST)
    b.vote_deprecation(DIGEST)
    assert a.proposal_state(proposal) == ProposalState.QUEUED
    assert reverts("VotedForProposal", b.object, proposal) == {
        "proposalId": proposal,
        "orgId": g.org_ids["bank-b"],
    }
    o.object(proposal)
    receipt = reg.object(proposal)
    assert a.events_in(receipt, "ProposalCancelled") == [{"proposalId": proposal}]
    assert a.is_approved(DIGEST)  # still approved; a new deprecation may be proposed
    assert a.votes(DIGEST) == (2, 2)
    b.propose_deprecation(DIGEST)
    assert a.latest_proposal(DIGEST) != proposal


def test_expired_approval_cannot_be_voted_and_frees_the_digest(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    r = a.clients.algorithms
    r.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    proposal = r.latest_proposal(DIGEST)
    expires_at = r.ballot(proposal).expires_at
    travel_to(consortium, expires_at)
    assert reverts("ProposalIsExpired", b.clients.algorithms.approve, DIGEST) == {
        "proposalId": proposal,
        "expiresAt": expires_at,
    }
    b.clients.algorithms.propose(DIGEST, "psi", "1", AlgorithmKind.PSI)
    receipt = last_receipt(consortium)
    assert r.events_in(receipt, "ProposalExpired") == [{"proposalId": proposal}]
    assert r.events_in(receipt, "AlgorithmProposalDropped") == [{"digest": DIGEST}]
    assert r.status(DIGEST) == AlgorithmStatus.PROPOSED
    a.clients.algorithms.approve(DIGEST)
    assert r.is_approved(DIGEST)
