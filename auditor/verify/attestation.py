"""`tee_attestation`: an attested job ran the approved code, in an enclave the consortium
trusted, on the inputs the owners sent, and erased them.

What the auditor holds: the chain's events; the participants' transcripts (digests of
every message); and the host's disclosed result (``provnet task result``), whose
``attestation`` part carries each report exactly as sent, the enclave's signed result
statement (the output by digest) and its signed destruction receipt. Nothing there is
taken on the host's word; each step below is one function over bytes, and the first
that fails names what differs:

1. the disclosed result opens the host's on-chain result commitment (so the bundle is
   the one the host committed to before the task completed);
2. every data owner got one report, and each is byte for byte the ``tee-report``
   message the host's (and, where given, the owner's) transcript records;
3. each report's evidence verifies for its backend (the simulated backend: its platform
   signature over the claims; the auditor reports the platform key, which owners
   configured, and says ``simulated`` because such a report proves no isolation);
4. each report binds the task's approved algorithm digest, and its measurement was
   trusted by the consortium's vote, not revoked, at the block the task started, with
   that same algorithm digest;
5. all reports come from one enclave (one pair of keys);
6. the result statement and the receipt are signed by that enclave for this task; the
   result used as many inputs as there are owners and the receipt erased exactly those,
   with the keys;
7. the receipt's digest is the checkpoint the host anchored on chain.

A task that failed because owners refused the enclave has no bundle: the check lists
the refusals recorded on chain (`AttestationRefused`) and is not applicable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from auditor.verify.check import Check, Malformed, digest32, guarded, maybe_bytes
from auditor.verify.checkpoints import ResultDisclosure, result_commitment
from auditor.verify.history import ZERO, TaskHistory, algorithm_kind, hex_
from ledger.canonical import canonical_json
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.measurements import measurement_sets_at
from ledger.transcript import Entry
from node.channel import message_digest
from node.tee import wire
from node.tee.provision import DestructionReceipt, ResultStatement, verify_receipt
from node.tee.provision import verify_statement as verify_signed_statement
from node.tee.refusal import Refused
from node.tee.report import AttestationReport, ReportClaims
from node.tee.simulated import SIMULATED, SimulatedVerifier

NAME = "tee_attestation"
STEP_REPORT = "tee-report"  # node/algorithms/tee.py's step names, part of the record
RECEIPT_CHECKPOINT = 0


def applies(h: TaskHistory) -> bool:
    """An attested job: the algorithm was proposed as a TEE algorithm."""
    return algorithm_kind(h) == AlgorithmKind.TEE


def opens_commitment(h: TaskHistory, host: str, disclosed: ResultDisclosure) -> None:
    submitted = h.by_node("ResultSubmitted").get(host.lower())
    if submitted is None:
        raise Malformed(f"the host {host} submitted no result on chain")
    want = digest32(submitted.args["resultDigest"], "ResultSubmitted.resultDigest of the host")
    got = result_commitment(h.task_id, disclosed.result, disclosed.salt)
    if got != want:
        raise Malformed(
            f"the disclosed result and salt hash to {hex_(got)}, not the host's on-chain "
            f"result commitment {hex_(want)}: altered, or another task's"
        )


def parse_bundle(
    result: Mapping[str, Any],
) -> tuple[str, dict[str, bytes], ResultStatement, DestructionReceipt]:
    bundle = result.get("attestation")
    if not isinstance(bundle, Mapping) or not {"backend", "reports", "result", "receipt"} <= set(
        bundle
    ):
        raise Malformed("the disclosed result has no attestation bundle")
    reports = bundle["reports"]
    if not isinstance(reports, Mapping):
        raise Malformed("attestation.reports is not an object of reports by owner")
    as_sent = {str(owner).lower(): canonical_json(doc) for owner, doc in reports.items()}
    try:
        statement = wire.statement_from_json(bundle["result"])
        receipt = wire.receipt_from_json(bundle["receipt"])
    except ValueError as exc:
        raise Malformed(str(exc)) from None
    return str(bundle["backend"]), as_sent, statement, receipt


def report_recorded(
    task_id: bytes,
    host: str,
    owner: str,
    report: bytes,
    transcripts: Mapping[str, Sequence[Entry]],
) -> list[str]:
    """The transcripts (host's, owner's) whose ``tee-report`` entry is this report; raises
    when one that is given records another."""
    want = message_digest(task_id, host, owner, STEP_REPORT, report)
    by_node = {node.lower(): entries for node, entries in transcripts.items()}
    found: list[str] = []
    for node, kind, peer in ((host, "sent", owner), (owner, "received", host)):
        entries = by_node.get(node.lower())
        if entries is None:
            continue
        recorded = [
            e
            for e in entries
            if e.step == STEP_REPORT and e.kind == kind and e.peer.lower() == peer.lower()
        ]
        if [e.digest for e in recorded] != [want]:
            raise Malformed(
                f"the report disclosed for {owner} is not the {STEP_REPORT!r} message "
                f"{node}'s transcript records as {kind}: altered or swapped"
            )
        found.append(node)
    if host not in found:
        raise Malformed(f"no transcript of the host {host} to bind the reports to")
    return found


def evidence_verifies(report: AttestationReport) -> dict[str, Any]:
    """The backend's evidence authenticates the claims; for ``simulated``, under the
    platform key the report carries (which owners must have configured to accept it)."""
    if report.backend != SIMULATED:
        raise Malformed(f"no auditor verifier for backend {report.backend!r}")
    platform_key = report.evidence.data[:32]
    try:
        SimulatedVerifier(frozenset({platform_key})).check_evidence(report)
    except Refused as refused:
        raise Malformed(f"report evidence: {refused}") from None
    return {"backend": SIMULATED, "platformKey": platform_key.hex(), "isolation": "none"}


def start_block(h: TaskHistory) -> int:
    """The block the task started in (its creation block if it never did)."""
    started = [e for e in h.task_events if e.name == "TaskStarted"]
    created = h.created()
    if started:
        return started[0].block_number
    if created is None:
        raise Malformed("task was never created")
    return created.block_number


def binds_approved_code(h: TaskHistory, claims: ReportClaims, approved: bytes) -> None:
    if claims.algorithm_digest != approved:
        raise Malformed(
            f"a report binds algorithm {hex_(claims.algorithm_digest)}, the task approved "
            f"{hex_(approved)}"
        )
    block = start_block(h)
    sets = measurement_sets_at(h.all_events, block)
    if claims.measurement in sets.revoked:
        raise Malformed(f"measurement {hex_(claims.measurement)} was revoked by block {block}")
    if claims.measurement not in sets.trusted:
        raise Malformed(
            f"measurement {hex_(claims.measurement)} was not trusted by the consortium's "
            f"vote at block {block}"
        )
    voted = sets.algorithm_digests.get(claims.measurement)
    if voted != approved:
        raise Malformed(
            f"measurement {hex_(claims.measurement)} was trusted for algorithm "
            f"{hex_(voted or ZERO)}, not the task's {hex_(approved)}"
        )


def one_enclave(claims: Sequence[ReportClaims]) -> ReportClaims:
    keys = {(c.hpke_public_key, c.signing_public_key, c.measurement) for c in claims}
    if len(keys) != 1:
        raise Malformed(f"the reports come from {len(keys)} enclaves (keys differ), not one")
    return claims[0]


def signed_and_erased(
    claims: ReportClaims,
    task_id: bytes,
    statement: ResultStatement,
    receipt: DestructionReceipt,
    owners: int,
) -> None:
    try:
        verify_signed_statement(claims, task_id, statement)
        verify_receipt(claims, task_id, receipt)
    except Refused as refused:
        raise Malformed(str(refused)) from None
    if len(set(statement.input_digests)) != owners:
        raise Malformed(
            f"the signed result used {len(set(statement.input_digests))} inputs, "
            f"the task has {owners} data owners"
        )
    if set(receipt.erased_input_digests) != set(statement.input_digests):
        raise Malformed("the receipt erased other inputs than the result used")
    if not receipt.keys_erased:
        raise Malformed("the receipt does not say the enclave's keys were erased")


def receipt_anchored(h: TaskHistory, host: str, receipt: DestructionReceipt) -> None:
    anchored = [
        e
        for e in h.task_events
        if e.name == "CheckpointAnchored"
        and str(e.args["node"]).lower() == host.lower()
        and e.args["round"] == RECEIPT_CHECKPOINT
    ]
    if len(anchored) != 1:
        raise Malformed(f"the host anchored {len(anchored)} receipt checkpoints, not one")
    on_chain = digest32(anchored[0].args["checkpointDigest"], "the receipt checkpoint")
    if on_chain != receipt.statement_digest:
        raise Malformed(
            f"the receipt's digest {hex_(receipt.statement_digest)} is not the checkpoint "
            f"the host anchored ({hex_(on_chain)}): altered"
        )


def _refusals(h: TaskHistory) -> list[dict[str, Any]]:
    return [
        {
            "node": str(e.args["node"]),
            "reportDigest": hex_(maybe_bytes(e.args["reportDigest"]) or b""),
            "reason": int(e.args["reason"]),
        }
        for e in h.task_events
        if e.name == "AttestationRefused"
    ]


@guarded(NAME)
def check_tee_attestation(
    h: TaskHistory,
    transcripts: Mapping[str, Sequence[Entry]],
    result: ResultDisclosure | None,
) -> Check:
    created = h.created()
    if created is None:
        return Check(NAME, False, "task was never created")
    refusals = _refusals(h)
    participants = h.participants()
    hosts = [p[0] for p in participants if p[1] == ZERO]
    owners = [p[0] for p in participants if p[1] != ZERO]
    if len(hosts) != 1:
        return Check(NAME, False, f"an attested job has one host seat, this task has {len(hosts)}")
    host = hosts[0]
    if result is None:
        detail = "no disclosed result (the host's `provnet task result` answer) to check"
        if refusals:
            detail = f"{len(refusals)} owner refusal(s) on chain; no enclave ran"
        return Check.not_applicable(NAME, detail, {"refusals": refusals})
    opens_commitment(h, host, result)
    backend, reports, statement, receipt = parse_bundle(result.result)
    if sorted(reports) != sorted(o.lower() for o in owners):
        raise Malformed(
            f"reports are disclosed for {sorted(reports)}, the owners are "
            f"{sorted(o.lower() for o in owners)}"
        )
    approved = digest32(created.args["algorithmDigest"], "TaskCreated.algorithmDigest")
    claims: list[ReportClaims] = []
    evidence: dict[str, Any] = {}
    bound: dict[str, list[str]] = {}
    for owner in owners:
        raw = reports[owner.lower()]
        bound[owner] = report_recorded(h.task_id, host, owner, raw, transcripts)
        try:
            report = AttestationReport.from_json(json.loads(raw))
        except ValueError as exc:
            raise Malformed(f"report for {owner}: {exc}") from None
        evidence = evidence_verifies(report)
        binds_approved_code(h, report.claims, approved)
        claims.append(report.claims)
    enclave = one_enclave(claims)
    if backend != enclave.backend:
        raise Malformed(f"the bundle says backend {backend!r}, its reports {enclave.backend!r}")
    signed_and_erased(enclave, h.task_id, statement, receipt, len(owners))
    receipt_anchored(h, host, receipt)
    return Check(
        NAME,
        True,
        f"backend {enclave.backend} (simulated: no hardware isolation): "
        f"{len(owners)} owner(s) got reports of one enclave running the approved algorithm, "
        f"measurement {hex_(enclave.measurement)} trusted by vote; result and destruction "
        "receipt signed by it; receipt anchored",
        {
            **evidence,
            "measurement": hex_(enclave.measurement),
            "algorithmDigest": hex_(approved),
            "reportsBoundTo": bound,
            "receipt": hex_(receipt.statement_digest),
            "refusals": refusals,
        },
    )
