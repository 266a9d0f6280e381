"""`provnet algorithm list|propose|vote`: the consortium's vote on what nodes may run.

A node runs only algorithms whose digest the consortium approved, and the digest is
computed from this build's code; proposing by name (`secure-stats`) computes it here,
so no one copies a digest by hand, and `list` shows whether this build can run each
algorithm on chain.
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
from ledger.events import EventReader, Source
from ledger.ids import InvalidInput, hex32
from node.algorithms.package import package_of
from scripts.chain_source import open_clients

_DIGEST = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Proposed:
    """What `AlgorithmProposed` said about a digest (name and version live only there)."""

    digest: bytes
    name: str
    version: str
    kind: int
    proposer_org: bytes


def local_algorithms() -> dict[bytes, ModuleType]:
    """The algorithms this build runs, by the digest of their code on disk now."""
    from node.process import ALGORITHMS

    return {package_of(m).digest: m for m in ALGORITHMS}


def proposed_on_chain(clients: Clients, from_block: int) -> dict[bytes, Proposed]:
    """Every digest ever proposed, with its latest proposal's name and version."""
    registry = clients.algorithms
    reader = EventReader(
        registry.chain, [Source("AlgorithmRegistry", registry.address, abi("AlgorithmRegistry"))]
    )
    found: dict[bytes, Proposed] = {}
    for event in reader.read(from_block):
        if event.name == "AlgorithmProposed":
            digest = bytes(event.args["digest"])
            found[digest] = Proposed(
                digest,
                str(event.args["name"]),
                str(event.args["version"]),
                int(event.args["kind"]),
                bytes(event.args["proposerOrg"]),
            )
    return found


def algorithm_rows(clients: Clients, from_block: int) -> list[dict[str, Any]]:
    """On-chain algorithms (and this build's ones not yet proposed), with status and votes."""
    local = local_algorithms()
    rows = []
    on_chain = proposed_on_chain(clients, from_block)
    for digest, p in on_chain.items():
        approvals, deprecations = clients.algorithms.votes(digest)
        rows.append(
            {
                "name": p.name,
                "version": p.version,
                "digest": hex32(digest),
                "kind": AlgorithmKind(p.kind).name,
                "status": clients.algorithms.status(digest).name,
                "votes": approvals,
                "deprecationVotes": deprecations,
                "runnableHere": digest in local,
            }
        )
    for digest, module in local.items():
        if digest not in on_chain:
            package = package_of(module)
            rows.append(
                {
                    "name": package.name,
                    "version": package.version,
                    "digest": hex32(digest),
                    "kind": AlgorithmKind(package.kind).name,
                    "status": AlgorithmStatus.NONE.name,
                    "votes": 0,
                    "deprecationVotes": 0,
                    "runnableHere": True,
                }
            )
    return rows


def resolve_algorithm(clients: Clients, from_block: int, reference: str) -> bytes:
    """A digest from a digest or a name; a name picks the open proposal (this build's
    digest first when several versions are open), else this build's digest."""
    if _DIGEST.match(reference):
        return bytes.fromhex(reference[2:])
    local = {package_of(m).name: d for d, m in local_algorithms().items()}
    named = [
        p.digest for p in proposed_on_chain(clients, from_block).values() if p.name == reference
    ]
    open_ = [d for d in named if clients.algorithms.status(d) == AlgorithmStatus.PROPOSED]
    if local.get(reference) in open_:
        return local[reference]
    if len(open_) == 1:
        return open_[0]
    if len(open_) > 1:
        choices = ", ".join(hex32(d) for d in open_)
        raise InvalidInput(
            "algorithm",
            f"{len(open_)} open proposals named {reference!r}: give the digest ({choices})",
        )
    if reference in local:
        return local[reference]
    known = sorted({*local, *(p.name for p in proposed_on_chain(clients, from_block).values())})
    raise InvalidInput(
        "algorithm", f"no algorithm named {reference!r} (known: {', '.join(known) or 'none'})"
    )


def _state(clients: Clients, digest: bytes, reference: str, source: str) -> dict[str, Any]:
    """The algorithm's status after a vote, and what has to happen next."""
    registry = clients.algorithms
    status = registry.status(digest)
    approvals, _ = registry.votes(digest)
    required = registry.required_votes()
    out: dict[str, Any] = {
        "digest": hex32(digest),
        "status": status.name,
        "votes": approvals,
        "requiredVotes": required,
    }
    if status == AlgorithmStatus.APPROVED:
        out["next"] = "approved: nodes of this build run it; create tasks with provnet task create"
    elif status == AlgorithmStatus.PROPOSED:
        ballot = registry.ballot(registry.latest_proposal(digest))
        out["proposal"] = ballot.state.name
        if ballot.eta:
            out["next"] = (
                f"carried; it executes after the timelock (at unix time {ballot.eta}) when "
                "anyone calls AlgorithmRegistry.execute, unless members object or a "
                "regulator vetoes"
            )
        else:
            out["next"] = (
                f"{max(required - approvals, 0)} more vote(s) needed: other organisations' admins "
                f"run provnet algorithm vote {source} --admin-keystore ADMIN.json {reference}"
            )
    return out


def _source_text(args: argparse.Namespace) -> str:
    if args.config is not None:
        return f"--config {args.config}"
    return f"--chain {args.chain} --manifest {args.manifest}"


def _require_admin(args: argparse.Namespace) -> None:
    if args.admin_keystore is None:
        raise InvalidInput("admin-keystore", "voting needs the organisation admin's keystore")


def _admin_org(clients: Clients) -> bytes:
    """The organisation the sender administers; refused before any transaction if none."""
    org = clients.consortium.active_admin_org(clients.account)
    if org == bytes(32):
        raise InvalidInput(
            "admin-keystore",
            f"{clients.account} is not the admin of an active organisation (see provnet org list)",
        )
    return org


def algorithm_list(args: argparse.Namespace) -> int:
    clients, deployment = open_clients(args)
    rows = algorithm_rows(clients, deployment.first_block)
    print(json.dumps(rows, indent=2))
    waiting = [r["name"] for r in rows if r["status"] in ("NONE", "PROPOSED")]
    if waiting:
        print(
            f"not yet approved: {', '.join(waiting)}; admins run provnet algorithm propose|vote "
            f"{_source_text(args)} --admin-keystore ADMIN.json NAME",
            file=sys.stderr,
        )
    return 0


def algorithm_propose(args: argparse.Namespace) -> int:
    if args.algorithm is None:
        raise InvalidInput("algorithm", "name the algorithm to propose, e.g. secure-stats")
    _require_admin(args)
    by_name = {package_of(m).name: m for m in local_algorithms().values()}
    module = by_name.get(args.algorithm)
    if module is None:
        known = ", ".join(sorted(by_name)) or "none"
        raise InvalidInput(
            "algorithm", f"this build has no algorithm {args.algorithm!r} (known: {known})"
        )
    package = package_of(module)
    clients, _ = open_clients(args, args.admin_keystore)
    _admin_org(clients)
    status = clients.algorithms.status(package.digest)
    if status == AlgorithmStatus.APPROVED:
        print(
            f"{package.name} {package.version} ({hex32(package.digest)}) is already "
            "approved; nothing to do"
        )
        return 0
    if status == AlgorithmStatus.PROPOSED:
        raise InvalidInput(
            "algorithm",
            f"{package.name} {hex32(package.digest)} is already proposed: "
            f"vote for it with provnet algorithm vote {_source_text(args)} "
            f"--admin-keystore ADMIN.json {package.name}",
        )
    if status == AlgorithmStatus.DEPRECATED:
        raise InvalidInput(
            "algorithm", f"{package.name} {hex32(package.digest)} was deprecated for good"
        )
    clients.algorithms.propose(
        package.digest, package.name, package.version, AlgorithmKind(package.kind)
    )
    result = _state(clients, package.digest, package.name, _source_text(args))
    print(json.dumps({"name": package.name, "version": package.version, **result}, indent=2))
    return 0


def algorithm_vote(args: argparse.Namespace) -> int:
    if args.algorithm is None:
        raise InvalidInput("algorithm", "name the algorithm (or give its digest) to vote for")
    _require_admin(args)
    clients, deployment = open_clients(args, args.admin_keystore)
    digest = resolve_algorithm(clients, deployment.first_block, args.algorithm)
    status = clients.algorithms.status(digest)
    if status == AlgorithmStatus.APPROVED:
        print(f"{args.algorithm} ({hex32(digest)}) is already approved; nothing to do")
        return 0
    if status != AlgorithmStatus.PROPOSED:
        raise InvalidInput(
            "algorithm",
            f"{args.algorithm} ({hex32(digest)}) is {status.name.lower()}, not proposed: "
            f"propose it with provnet algorithm propose {_source_text(args)} "
            "--admin-keystore ADMIN.json NAME",
        )
    org = _admin_org(clients)
    if clients.algorithms.has_voted(digest, org, False):
        raise InvalidInput("algorithm", f"your organisation already voted for {hex32(digest)}")
    clients.algorithms.approve(digest)
    print(json.dumps(_state(clients, digest, args.algorithm, _source_text(args)), indent=2))
    return 0
