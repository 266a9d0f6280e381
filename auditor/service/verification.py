"""The one end-to-end verification of a task, shared by `provnet audit verify` and the API.

Given the chain, the deployment and a task id it reads the task's history behind the
confirmation depth, asks an injected `EvidenceSource` for every participant's transcript
(or takes transcripts handed in, as `audit verify --transcripts DIR` does), runs every
check, and produces what a regulator keeps: the verdicts, the signed in-toto statement in
a DSSE envelope, the digest of that envelope's exact bytes, and the task's PROV-JSON.

`auditor` never imports `node` (DESIGN §2): the real evidence source (gRPC + mutual TLS,
regulator-signed requests) is built in `scripts/` and passed in. A source reports a node
it could not reach, or that refused, as a problem rather than raising: that node's
transcript is then simply missing, so `evidence_roots_match` fails naming it, and the
problem is carried in the result for the reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from auditor.replay import ChainView
from auditor.report import dsse
from auditor.report.provenance import prov_json
from auditor.report.statement import statement
from auditor.verify.check import Check
from auditor.verify.checkpoints import ResultDisclosure
from auditor.verify.history import TaskHistory
from auditor.verify.run import verify_task
from ledger.canonical import canonical_json
from ledger.chain import Chain
from ledger.deployment import Deployment
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry


@dataclass(frozen=True)
class Evidence:
    """What an evidence source gathered: transcripts by node address, and for each node
    it has none for, why (unreachable, refused, ...)."""

    transcripts: dict[str, list[Entry]]
    problems: dict[str, str] = field(default_factory=dict)


class EvidenceSource(Protocol):
    """Fetches every listed participant's transcript of a task. Must not raise for one
    node's failure: that node goes into `Evidence.problems` instead."""

    def __call__(self, task_id: bytes, participants: list[str]) -> Evidence: ...


def envelope_bytes(envelope: Mapping[str, Any]) -> bytes:
    """The exact bytes a report is served and stored as (RFC 8785 JSON): the report
    digest is over these, so ``sha256sum`` of a downloaded report equals it."""
    return canonical_json(dict(envelope))


def report_digest(envelope: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(envelope_bytes(envelope)).hexdigest()


@dataclass(frozen=True)
class Verification:
    """One verification of one task, as reported and stored."""

    task_id: bytes
    chain_id: int
    found: bool  # the chain knows the task
    checks: list[Check]
    verified: bool
    outcome: dict[str, Any] | None
    statement: dict[str, Any]
    envelope: dict[str, Any] | None  # None without a signer
    report_digest: str | None
    prov: str | None  # None for a task the chain never saw
    evidence_problems: dict[str, str]
    read_up_to: tuple[int, bytes]
    key_id: str | None = None

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.failed]

    def to_json(self) -> dict[str, Any]:
        """The JSON answer of the API and `audit verify` (without the envelope and PROV,
        which have their own endpoints and files)."""
        return {
            "task": "0x" + self.task_id.hex(),
            "chainId": self.chain_id,
            "found": self.found,
            "outcome": self.outcome,
            "verified": self.verified,
            "failedChecks": self.failed,
            "checks": [c.to_json() for c in self.checks],
            "evidenceProblems": dict(sorted(self.evidence_problems.items())),
            "readUpTo": {"number": self.read_up_to[0], "hash": "0x" + self.read_up_to[1].hex()},
            "reportDigest": self.report_digest,
            "reportKeyId": self.key_id,
        }


def outcome_of(history: TaskHistory, checks: Sequence[Check]) -> dict[str, Any] | None:
    """How the task ended, as the checks saw it (None while it runs or if unknown)."""
    for c in checks:
        if "outcome" in c.evidence:
            value = c.evidence["outcome"]
            return value if isinstance(value, dict) else {"state": str(value)}
    if any(e.name == "TaskCompleted" for e in history.task_events):
        return {"state": "COMPLETED"}
    return None


class TaskVerifier:
    """Verifies tasks of one deployment; safe to reuse for many tasks (not thread-safe:
    give each thread its own, or serialise calls).

    Reuse is also what makes it fast: its `ChainView` keeps the deployment's events,
    block timestamps and contract creations across verifications, each checked against
    the canonical chain before use (see `auditor.replay.ChainView` for why that cannot
    serve a stale answer), so a repeated verification reads only new blocks, and the
    code and links of the deployment in one JSON-RPC batch.
    """

    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        evidence: EvidenceSource | None = None,
        signer: CryptoSigner | None = None,
        confirmations: int = 0,
    ) -> None:
        self.chain = chain
        self.deployment = deployment
        self.evidence = evidence
        self.signer = signer
        self.confirmations = confirmations
        self.view = ChainView(chain, deployment, confirmations)

    def verify(
        self,
        task_id: bytes,
        params: ParamsEnvelope | None = None,
        transcripts: Mapping[str, Sequence[Entry]] | None = None,
        result: ResultDisclosure | None = None,
    ) -> Verification:
        """Every check of ``task_id``. ``transcripts`` given: judged as they are (no
        fetch); otherwise the evidence source is asked for every participant's."""
        chain, deployment = self.chain, self.deployment
        # One confirmed head for everything read: events, code and links are all read
        # up to / at this block (the readUpTo), so none of them is newer than it.
        head, head_hash = self.view.head()
        history = self.view.task_history(task_id, (head, head_hash))
        problems: dict[str, str] = {}
        if transcripts is None:
            transcripts = {}
            participants = [node for node, *_ in history.participants()]
            if self.evidence is not None and history.created() is not None and participants:
                got = self.evidence(task_id, participants)
                transcripts, problems = got.transcripts, dict(got.problems)
        # The chain itself: the code at the manifest's addresses and their wiring.
        bound = self.view.deployment_checks((head, head_hash))
        checks = verify_task(history, transcripts, params, deployment=bound, result=result)
        found = history.created() is not None
        contracts = {name: c.address for name, c in deployment.contracts.items()}
        signed_statement = statement(history, checks, chain.chain_id, contracts, (head, head_hash))
        envelope = None if self.signer is None else dsse.sign(signed_statement, self.signer)
        return Verification(
            task_id=task_id,
            chain_id=chain.chain_id,
            found=found,
            checks=checks,
            verified=found and not any(c.failed for c in checks),
            outcome=outcome_of(history, checks),
            statement=signed_statement,
            envelope=envelope,
            report_digest=None if envelope is None else report_digest(envelope),
            prov=prov_json(history) if found else None,
            evidence_problems=problems,
            read_up_to=(head, head_hash),
            key_id=None if self.signer is None else self.signer.public_key.keyid,
        )
