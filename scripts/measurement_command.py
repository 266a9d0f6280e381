"""`provnet measurement list|propose|revoke|vote`: the consortium's vote on enclave code.

A data owner provisions its rows only to an enclave whose measurement the consortium
trusts (`Consortium.proposeMeasurement`, carried by a ballot), so the measurement has
to reach the chain before any attested job runs. Proposing by name (`tee-join`)
computes the measurement of this build's algorithm for the named backend here, so no
one copies 32 bytes by hand, and `list` shows whether the trusted measurement is the
one this build's enclaves would report: a node of another build is refused by every
owner (UNKNOWN_MEASUREMENT) however many measurements are trusted.

Only the `simulated` backend can be measured by this build, and it gives no hardware
isolation (docs/tee.md): every answer that involves it says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ledger.artifacts import abi
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind, AlgorithmStatus
from ledger.clients.consortium import Ballot, MeasurementStatus, ProposalAction, ProposalState
from ledger.clients.measurements import measurement_sets_at
from ledger.events import Event, EventReader, Source
from ledger.ids import InvalidInput, hex32
from node.algorithms.package import package_of
from node.tee.simulated import SIMULATED, simulated_measurement
from scripts.algorithm_command import (
    _admin_org,
    _require_admin,
    _source_text,
    local_algorithms,
    proposed_on_chain,
)
from scripts.chain_source import open_clients

# The backends whose measurement this build can compute from its own files. A hardware
# enclave's measurement comes from its signed build, not from the sources here.
MEASURABLE_BACKENDS = (SIMULATED,)
SIMULATED_NOTE = (
    "simulated backend: no hardware isolation; the host can read every input and forge "
    "reports (docs/tee.md). Data owners accept it only if their node.json lists it in "
    "tee.allowed_backends."
)
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_OPEN = (ProposalState.VOTING, ProposalState.QUEUED)
_ACTION = {
    int(ProposalAction.TRUST_MEASUREMENT): "trust",
    int(ProposalAction.REVOKE_MEASUREMENT): "revoke",
}


@dataclass(frozen=True)
class LocalEnclave:
    """One of this build's TEE algorithms as an enclave of `backend` would measure it."""

    name: str
    version: str
    algorithm_digest: bytes
    backend: str
    measurement: bytes


@dataclass(frozen=True)
class MeasurementProposal:
    """What `MeasurementProposed` said (the algorithm digest of a trust proposal lives
    only there until it is executed)."""

    proposal_id: bytes
    action: int
    measurement: bytes
    algorithm_digest: bytes


def tee_algorithms() -> dict[str, ModuleType]:
    """This build's algorithms that run in an enclave, by name."""
    from node.process import ALGORITHMS

    return {m.NAME: m for m in ALGORITHMS if int(m.KIND) == int(AlgorithmKind.TEE)}


def local_enclave(name: str, backend: str | None) -> LocalEnclave:
    """The measurement this build's TEE algorithm `name` has under `backend`, or an error
    naming the choices (checked before any chain or keystore is touched)."""
    tee = tee_algorithms()
    module = tee.get(name)
    if module is None:
        choices = ", ".join(sorted(tee)) or "none"
        others = {package_of(m).name: m for m in local_algorithms().values()}
        if name in others:
            kind = AlgorithmKind(int(others[name].KIND)).name
            raise InvalidInput(
                "algorithm",
                f"{name!r} is of kind {kind}, not an algorithm that runs in an enclave "
                f"(this build's TEE algorithms: {choices})",
            )
        raise InvalidInput(
            "algorithm", f"this build has no TEE algorithm {name!r} (known: {choices})"
        )
    if backend is None:
        raise InvalidInput(
            "backend",
            "name the enclave backend the measurement is for: --backend simulated (the only "
            "one this build can measure; it gives no hardware isolation)",
        )
    if backend not in MEASURABLE_BACKENDS:
        raise InvalidInput(
            "backend",
            f"this build cannot compute a measurement for {backend!r} "
            f"(choices: {', '.join(MEASURABLE_BACKENDS)})",
        )
    package = package_of(module)
    return LocalEnclave(
        package.name, package.version, package.digest, backend, simulated_measurement(package)
    )


def local_enclaves() -> dict[bytes, LocalEnclave]:
    """Every measurement this build's enclaves would report, by measurement."""
    found = {}
    for name in tee_algorithms():
        for backend in MEASURABLE_BACKENDS:
            enclave = local_enclave(name, backend)
            found[enclave.measurement] = enclave
    return found


def _consortium_events(clients: Clients, from_block: int) -> tuple[list[Event], int]:
    """Every `Consortium` event up to the head, and the head they were read to."""
    consortium = clients.consortium
    reader = EventReader(
        consortium.chain, [Source("Consortium", consortium.address, abi("Consortium"))]
    )
    head = reader.safe_head()
    return reader.read(from_block, head), head


def _proposals(events: list[Event]) -> list[MeasurementProposal]:
    return [
        MeasurementProposal(
            bytes(e.args["proposalId"]),
            int(e.args["action"]),
            bytes(e.args["measurement"]),
            bytes(e.args["algorithmDigest"]),
        )
        for e in events
        if e.name == "MeasurementProposed"
    ]


def _algorithm_names(clients: Clients, from_block: int) -> dict[bytes, str]:
    """`name version` of every algorithm digest this build or the chain knows."""
    names = {
        digest: f"{p.name} {p.version}"
        for digest, p in proposed_on_chain(clients, from_block).items()
    }
    for digest, module in local_algorithms().items():
        names.setdefault(digest, f"{module.NAME} {module.VERSION}")
    return names


def _describe(measurement: bytes, local: dict[bytes, LocalEnclave]) -> dict[str, Any]:
    """The backend and this-build facts of a measurement (the chain records neither)."""
    enclave = local.get(measurement)
    if enclave is None:
        return {"backend": None, "thisBuild": False}
    out: dict[str, Any] = {
        "algorithm": f"{enclave.name} {enclave.version}",
        "backend": enclave.backend,
        "thisBuild": True,
    }
    if enclave.backend == SIMULATED:
        out["note"] = SIMULATED_NOTE
    return out


def _next_step(
    action: int, ballot: Ballot, required: int, backend: str | None, reference: str
) -> str:
    """What has to happen after a vote, worded for the operator who just cast it."""
    if ballot.state == ProposalState.EXECUTED:
        if action == ProposalAction.TRUST_MEASUREMENT:
            host = f'"tee": {{"backend": "{backend}"}}' if backend else '"tee": {"backend": ...}'
            return (
                "trusted: data owners accept enclaves with this measurement if their node.json "
                f"tee.allowed_backends lists {backend or 'its backend'}; the host's node.json "
                f"needs {host} and owners its key (provnet node tee-key)"
            )
        return (
            "revoked for good: data owners refuse enclaves with this measurement "
            "(REVOKED_MEASUREMENT); a fixed build has a new one: provnet measurement propose"
        )
    if ballot.state == ProposalState.QUEUED:
        return (
            f"carried; it executes after the timelock (at unix time {ballot.eta}) when anyone "
            "calls Consortium.execute, unless members object or a regulator vetoes"
        )
    if ballot.state == ProposalState.VOTING:
        return (
            f"{max(required - ballot.votes, 0)} more vote(s) needed: another member's admin "
            f"runs: provnet measurement vote {reference}"
        )
    return f"this proposal is {ballot.state.name.lower()}; propose again to reopen the vote"


def _proposal_state(clients: Clients, proposal: MeasurementProposal, source: str) -> dict[str, Any]:
    """A measurement proposal's ballot, the measurement's status after it, what this build
    knows of it (backend, algorithm) and the next step, last."""
    consortium = clients.consortium
    ballot = consortium.ballot(proposal.proposal_id)
    required = consortium.required_votes()
    info = consortium.measurement_info(proposal.measurement)
    described = _describe(proposal.measurement, local_enclaves())
    reference = f"{source} --admin-keystore ADMIN.json {hex32(proposal.proposal_id)}"
    return {
        "proposal": hex32(proposal.proposal_id),
        "action": _ACTION.get(proposal.action, str(proposal.action)),
        "measurement": hex32(proposal.measurement),
        "algorithmDigest": hex32(proposal.algorithm_digest),
        "state": ballot.state.name,
        "votes": ballot.votes,
        "requiredVotes": required,
        "status": info.status.name,
        **described,
        "next": _next_step(proposal.action, ballot, required, described["backend"], reference),
    }


def _find_proposal(clients: Clients, from_block: int, proposal_id: bytes) -> MeasurementProposal:
    events, _ = _consortium_events(clients, from_block)
    for proposal in _proposals(events):
        if proposal.proposal_id == proposal_id:
            return proposal
    raise InvalidInput("proposal", f"{hex32(proposal_id)} is not a measurement proposal")


def _parse_hex32(value: str | None, field: str, what: str) -> bytes:
    if value is None or not _HEX32.match(value):
        raise InvalidInput(
            field, f"give {what} (0x + 64 hex digits, as provnet measurement list shows it)"
        )
    return bytes.fromhex(value[2:])


def measurement_rows(clients: Clients, from_block: int) -> list[dict[str, Any]]:
    """Every measurement on chain (from `Consortium` events), then this build's not yet
    proposed, with status, algorithm, backend where known and any open proposal."""
    consortium = clients.consortium
    events, head = _consortium_events(clients, from_block)
    sets = measurement_sets_at(events, head)
    names = _algorithm_names(clients, from_block)
    local = local_enclaves()
    latest: dict[bytes, MeasurementProposal] = {}
    for proposal in _proposals(events):
        latest[proposal.measurement] = proposal  # events come in chain order
    required = consortium.required_votes()
    rows = []
    for measurement, proposal in latest.items():
        ballot = consortium.ballot(proposal.proposal_id)
        if measurement in sets.revoked:
            status = MeasurementStatus.REVOKED.name
        elif measurement in sets.trusted:
            status = MeasurementStatus.TRUSTED.name
        elif ballot.state in _OPEN:
            status = "PROPOSED"
        else:
            status = MeasurementStatus.NONE.name
        digest = sets.algorithm_digests.get(measurement, proposal.algorithm_digest)
        row: dict[str, Any] = {
            "measurement": hex32(measurement),
            "status": status,
            "algorithmDigest": hex32(digest),
            "algorithm": names.get(digest),
            **_describe(measurement, local),
            "lastProposal": {
                "proposal": hex32(proposal.proposal_id),
                "action": _ACTION.get(proposal.action, str(proposal.action)),
                "state": ballot.state.name,
                "votes": ballot.votes,
                "requiredVotes": required,
            },
        }
        rows.append(row)
    for measurement, enclave in local.items():
        if measurement not in latest:
            rows.append(
                {
                    "measurement": hex32(measurement),
                    "status": MeasurementStatus.NONE.name,
                    "algorithmDigest": hex32(enclave.algorithm_digest),
                    "algorithm": f"{enclave.name} {enclave.version}",
                    **_describe(measurement, local),
                    "lastProposal": None,
                }
            )
    return rows


def measurement_list(args: argparse.Namespace) -> int:
    clients, deployment = open_clients(args)
    rows = measurement_rows(clients, deployment.first_block)
    print(json.dumps(rows, indent=2))
    admin = f"{_source_text(args)} --admin-keystore ADMIN.json"
    for row in rows:
        if not row["thisBuild"] or row["status"] == MeasurementStatus.TRUSTED.name:
            continue
        name = str(row["algorithm"]).split(" ")[0]
        if row["status"] == MeasurementStatus.REVOKED.name:
            todo = "revoked for good: owners refuse it; a fixed build has a new measurement"
        elif row["status"] == "PROPOSED":
            todo = (
                "proposed, refused by owners until trusted: other admins run provnet "
                f"measurement vote {admin} {row['lastProposal']['proposal']}"
            )
        else:
            todo = (
                "not on chain, refused by owners until trusted: an admin runs provnet "
                f"measurement propose {admin} {name} --backend {row['backend']}"
            )
        print(
            f"this build's {name} enclave ({row['backend']}) has measurement "
            f"{row['measurement']}, {todo}",
            file=sys.stderr,
        )
    return 0


def measurement_propose(args: argparse.Namespace) -> int:
    if args.target is None:
        raise InvalidInput("algorithm", "name the TEE algorithm to propose, e.g. tee-join")
    enclave = local_enclave(args.target, args.backend)
    _require_admin(args)
    clients, _ = open_clients(args, args.admin_keystore)
    _admin_org(clients)
    consortium = clients.consortium
    facts = {
        "name": enclave.name,
        "version": enclave.version,
        "backend": enclave.backend,
        "measurement": hex32(enclave.measurement),
        "algorithmDigest": hex32(enclave.algorithm_digest),
    }
    info = consortium.measurement_info(enclave.measurement)
    if info.status == MeasurementStatus.TRUSTED:
        done = {"status": info.status.name, "next": "already trusted; nothing to do"}
        print(json.dumps({**facts, **done, "note": SIMULATED_NOTE}, indent=2))
        return 0
    if info.status == MeasurementStatus.REVOKED:
        raise InvalidInput(
            "algorithm",
            f"{enclave.name}'s {enclave.backend} measurement {hex32(enclave.measurement)} was "
            "revoked for good: a fixed build has a new measurement",
        )
    open_ = consortium.open_measurement_proposal(enclave.measurement)
    if open_ != bytes(32) and consortium.proposal_state(open_) in _OPEN:
        raise InvalidInput(
            "algorithm",
            f"{hex32(enclave.measurement)} is already proposed: vote for it with provnet "
            f"measurement vote {_source_text(args)} --admin-keystore ADMIN.json {hex32(open_)}",
        )
    algorithm = clients.algorithms.status(enclave.algorithm_digest)
    if algorithm == AlgorithmStatus.DEPRECATED:
        raise InvalidInput(
            "algorithm",
            f"{enclave.name} {hex32(enclave.algorithm_digest)} was deprecated for good: no "
            "task can run it, so there is no enclave to trust",
        )
    proposal_id = consortium.propose_measurement(enclave.measurement, enclave.algorithm_digest)
    proposal = MeasurementProposal(
        proposal_id,
        int(ProposalAction.TRUST_MEASUREMENT),
        enclave.measurement,
        enclave.algorithm_digest,
    )
    out = {
        **facts,
        "algorithmStatus": algorithm.name,
        **_proposal_state(clients, proposal, _source_text(args)),
    }
    if algorithm != AlgorithmStatus.APPROVED:
        out["next"] += (
            f"; tasks also need the algorithm approved ({algorithm.name.lower()} now): "
            f"provnet algorithm propose|vote {_source_text(args)} --admin-keystore ADMIN.json "
            f"{enclave.name}"
        )
    print(json.dumps(out, indent=2))
    return 0


def measurement_revoke(args: argparse.Namespace) -> int:
    measurement = _parse_hex32(args.target, "measurement", "the trusted measurement to revoke")
    _require_admin(args)
    clients, _ = open_clients(args, args.admin_keystore)
    _admin_org(clients)
    consortium = clients.consortium
    info = consortium.measurement_info(measurement)
    if info.status == MeasurementStatus.REVOKED:
        print(f"{hex32(measurement)} is already revoked; nothing to do")
        return 0
    if info.status != MeasurementStatus.TRUSTED:
        raise InvalidInput(
            "measurement",
            f"{hex32(measurement)} is not trusted, so there is nothing to revoke "
            "(provnet measurement list shows every measurement's status)",
        )
    open_ = consortium.open_measurement_proposal(measurement)
    if open_ != bytes(32) and consortium.proposal_state(open_) in _OPEN:
        raise InvalidInput(
            "measurement",
            f"its revocation is already proposed: vote for it with provnet measurement vote "
            f"{_source_text(args)} --admin-keystore ADMIN.json {hex32(open_)}",
        )
    proposal_id = consortium.propose_measurement_revocation(measurement)
    proposal = MeasurementProposal(
        proposal_id,
        int(ProposalAction.REVOKE_MEASUREMENT),
        measurement,
        info.algorithm_digest,
    )
    print(json.dumps(_proposal_state(clients, proposal, _source_text(args)), indent=2))
    return 0


def measurement_vote(args: argparse.Namespace) -> int:
    proposal_id = _parse_hex32(args.target, "proposal", "the proposal id to vote for")
    _require_admin(args)
    clients, deployment = open_clients(args, args.admin_keystore)
    consortium = clients.consortium
    state = consortium.proposal_state(proposal_id)
    if state == ProposalState.NONE:
        # A measurement given instead of its proposal: vote for its open one.
        open_ = consortium.open_measurement_proposal(proposal_id)
        if open_ == bytes(32):
            raise InvalidInput(
                "proposal",
                f"no proposal {hex32(proposal_id)}: give a proposal id (lastProposal in "
                f"provnet measurement list {_source_text(args)})",
            )
        proposal_id, state = open_, consortium.proposal_state(open_)
    proposal = _find_proposal(clients, deployment.first_block, proposal_id)
    if state in (ProposalState.EXECUTED, ProposalState.QUEUED):
        # Carried already: another vote changes nothing; say where it stands.
        print(json.dumps(_proposal_state(clients, proposal, _source_text(args)), indent=2))
        return 0
    if state != ProposalState.VOTING:
        raise InvalidInput(
            "proposal",
            f"{hex32(proposal_id)} is {state.name.lower()}, not open for votes: "
            "propose again with provnet measurement propose|revoke",
        )
    org = _admin_org(clients)
    if consortium.has_voted(proposal_id, org):
        raise InvalidInput("proposal", f"your organisation already voted for {hex32(proposal_id)}")
    consortium.vote(proposal_id)
    print(json.dumps(_proposal_state(clients, proposal, _source_text(args)), indent=2))
    return 0
