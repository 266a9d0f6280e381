"""`provnet task show` and `provnet audit verify`: read-only views of a deployment.

`audit verify` prints the report as JSON on stdout and a line per check on stderr,
exits non-zero when any check fails, and on request writes the signed in-toto/DSSE
report (`--sign-key`, `--report`) and the task's W3C PROV-JSON (`--prov`).

Both load and check the manifest against the chain before reading anything, so a
regulator pointing the tool at the wrong network gets a one-line refusal, not a
misleading report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from auditor.replay import deployment_checks, reader_for, task_history
from auditor.report import dsse
from auditor.report.provenance import prov_json
from auditor.report.statement import statement
from auditor.verifier import verify_task
from auditor.verify.check import FAIL, NOT_APPLICABLE, PASS, Check
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.deployment import Deployment
from ledger.ids import InvalidInput, as_bytes32
from ledger.jsonfile import read_json
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry


def _open(args: argparse.Namespace) -> tuple[Chain, Deployment, bytes]:
    task_id = as_bytes32(args.task, "task")
    deployment = Deployment.load(args.manifest)
    deployment.check_artifacts()
    chain = Chain.connect(args.chain)
    Clients.bind(chain, deployment)  # refuses a manifest made for another chain
    return chain, deployment, task_id


def task_show(args: argparse.Namespace) -> int:
    chain, deployment, task_id = _open(args)
    tasks = Clients.bind(chain, deployment).tasks
    info = tasks.info(task_id)
    print(
        json.dumps(
            {
                "task": "0x" + task_id.hex(),
                "state": info.state.name,
                "creatorOrg": "0x" + info.creator_org.hex(),
                "algorithmDigest": "0x" + info.algorithm_digest.hex(),
                "deadline": info.deadline,
                "participants": [
                    {
                        "node": p.node,
                        "datasetId": "0x" + p.dataset_id.hex(),
                        "datasetVersion": p.dataset_version,
                        "grantId": "0x" + p.grant_id.hex(),
                    }
                    for p in tasks.participants(task_id)
                ],
            },
            indent=2,
        )
    )
    return 0


def load_transcripts(directory: Path | None) -> dict[str, list[Entry]]:
    """`<node address>.json` files, each a JSON list of transcript entries."""
    if directory is None:
        return {}
    if not directory.is_dir():
        raise InvalidInput("transcripts", f"{directory} is not a directory")
    transcripts = {}
    for path in sorted(directory.glob("*.json")):
        try:
            raw: Any = json.loads(path.read_text())
            transcripts[path.stem] = [Entry.from_json(e) for e in raw]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"transcripts/{path.name}", f"not a transcript ({exc})") from None
    return transcripts


def load_params(path: Path | None) -> ParamsEnvelope | None:
    """The parameters and salt the task's creator disclosed: either the envelope
    ``{"params", "salt"}`` or the creator's ``provnet task result`` answer holding it."""
    if path is None:
        return None
    raw = read_json(path, "params")
    if isinstance(raw, dict) and "result" in raw and "params" in raw:
        raw = raw["params"]
    return ParamsEnvelope.from_json(raw, "params")


def _summary(task_id: bytes, checks: list[Check], verified: bool) -> str:
    """One line per check with its verdict, for the person at the terminal."""
    width = max((len(c.name) for c in checks), default=0)
    lines = [f"provnet audit verify 0x{task_id.hex()}"]
    for c in checks:
        lines.append(f"  {VERDICT[c.status]:<4}  {c.name:<{width}}  {c.detail}")
    failed = [c.name for c in checks if c.failed]
    lines.append(
        "verified: every check passed or did not apply"
        if verified
        else f"NOT verified: {len(failed)} check(s) failed"
        + (f" ({', '.join(failed)})" if failed else "")
    )
    return "\n".join(lines)


VERDICT = {PASS: "PASS", FAIL: "FAIL", NOT_APPLICABLE: "n/a"}


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot write: {exc.strerror}") from None


def audit_verify(args: argparse.Namespace) -> int:
    transcripts = load_transcripts(args.transcripts)
    params = load_params(getattr(args, "params", None))
    sign_key: Path | None = getattr(args, "sign_key", None)
    report_path: Path | None = getattr(args, "report", None)
    prov_path: Path | None = getattr(args, "prov", None)
    if (sign_key is None) != (report_path is None):
        raise InvalidInput("report", "--sign-key and --report go together: the report is signed")
    signer = dsse.load_signer(sign_key) if sign_key is not None else None
    chain, deployment, task_id = _open(args)
    history = task_history(chain, deployment, task_id, args.confirmations)
    # Read after the events: none of them is newer than this block (the report's readUpTo).
    head = max(reader_for(chain, deployment, args.confirmations).safe_head(), 0)
    # The manifest's claims (artifact digests) were checked in `_open`; these check the
    # chain itself: the code at its addresses and how the contracts point at each other.
    bound = deployment_checks(chain, deployment, args.confirmations)
    checks = verify_task(history, transcripts, params, deployment=bound)
    verified = not any(c.failed for c in checks) and history.created() is not None
    outcome = next(
        (c.evidence["outcome"] for c in checks if "outcome" in c.evidence),
        {"state": "COMPLETED"}
        if any(e.name == "TaskCompleted" for e in history.task_events)
        else None,
    )
    written: dict[str, str] = {}
    if signer is not None and report_path is not None:
        head_hash = bytes(chain.w3.eth.get_block(head)["hash"])
        contracts = {name: c.address for name, c in deployment.contracts.items()}
        signed = dsse.sign(
            statement(history, checks, chain.chain_id, contracts, (head, head_hash)), signer
        )
        _write(report_path, json.dumps(signed, indent=2) + "\n")
        written["report"] = str(report_path)
        written["reportKeyId"] = signer.public_key.keyid
    if prov_path is not None and history.created() is not None:
        _write(prov_path, prov_json(history))
        written["prov"] = str(prov_path)
    print(
        json.dumps(
            {
                "task": "0x" + task_id.hex(),
                "chainId": chain.chain_id,
                "outcome": outcome,
                "checks": [c.to_json() for c in checks],
                "verified": verified,
                **written,
            },
            indent=2,
        )
    )
    if history.created() is None:
        # The report still shows the deployment checks (was the manifest right?), but
        # a task the chain never saw must not read as a quiet list of checks.
        print(
            f"provnet: error: task: no such task on chain: 0x{task_id.hex()} (TaskRegistry "
            f"{deployment.address('TaskRegistry')}, chain {chain.chain_id})",
            file=sys.stderr,
        )
        return 1
    sys.stdout.flush()  # the JSON first, then the summary, also when both go to one file
    print(_summary(task_id, checks, verified), file=sys.stderr)
    return 0 if verified else 1


def audit_check_report(args: argparse.Namespace) -> int:
    """`provnet audit check-report REPORT --public-key PEM`: is this the auditor's report,
    unchanged? Prints the Statement's verdict and subject; exits 1 when the signature or
    the envelope does not verify, 2 on unreadable input."""
    envelope = read_json(args.report, "report")
    try:
        pem = Path(args.public_key).read_bytes()
    except OSError as exc:
        raise InvalidInput("public-key", f"cannot read {args.public_key}: {exc.strerror}") from None
    key = dsse.public_key(pem)
    try:
        signed = dsse.verify(envelope, key)
    except dsse.ReportInvalid as exc:
        print(f"provnet: report not verified: {exc}", file=sys.stderr)
        return 1
    predicate = signed.get("predicate", {})
    print(
        json.dumps(
            {
                "signatureVerified": True,
                "keyId": key.keyid,
                "task": predicate.get("task"),
                "verificationResult": predicate.get("verificationResult"),
                "failedChecks": predicate.get("failedChecks"),
                "subject": signed.get("subject"),
            },
            indent=2,
        )
    )
    return 0
