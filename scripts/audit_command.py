"""`provnet task show` and `provnet audit verify`: read-only views of a deployment.

`audit verify` runs `auditor.service.verification.TaskVerifier` (the one verification
the auditor's API also runs). With `--config regulator/node.json` and no
`--transcripts`, the regulator's node fetches every participant's evidence itself
(`scripts.audit_fetch_command.RegulatorNode`); a participant it cannot reach is named
and its evidence checks fail. It prints the report as JSON on stdout and a line per check
on stderr, exits non-zero when any check fails, and on request writes the signed
in-toto/DSSE report (`--sign-key`, `--report`: the exact bytes `reportDigest` is over)
and the task's W3C PROV-JSON (`--prov`).

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

from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from auditor.report import dsse
from auditor.service.verification import TaskVerifier, Verification, envelope_bytes
from auditor.verify.check import FAIL, NOT_APPLICABLE, PASS
from auditor.verify.checkpoints import ResultDisclosure
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


def load_result(path: Path | None) -> ResultDisclosure | None:
    """The creator's disclosed result and commitment salt, when ``--params`` is its whole
    ``provnet task result`` answer (what the round-chain and enclave checks open)."""
    if path is None:
        return None
    raw = read_json(path, "params")
    if not isinstance(raw, dict) or "result" not in raw or "commitmentSalt" not in raw:
        return None
    try:
        return ResultDisclosure.from_json(raw)
    except ValueError as exc:
        raise InvalidInput("params", f"the disclosed result: {exc}") from None


def _summary(result: Verification) -> str:
    """One line per check with its verdict, for the person at the terminal."""
    checks = result.checks
    width = max((len(c.name) for c in checks), default=0)
    lines = [f"provnet audit verify 0x{result.task_id.hex()}"]
    for c in checks:
        lines.append(f"  {VERDICT[c.status]:<4}  {c.name:<{width}}  {c.detail}")
    for node, problem in sorted(result.evidence_problems.items()):
        lines.append(f"  evidence of {node} not fetched: {problem}")
    if result.report_digest is not None:
        lines.append(f"report digest: {result.report_digest} (key {result.key_id})")
    failed = result.failed
    lines.append(  # last, so a script can read the verdict from the final line
        "verified: every check passed or did not apply"
        if result.verified
        else f"NOT verified: {len(failed)} check(s) failed"
        + (f" ({', '.join(failed)})" if failed else "")
    )
    return "\n".join(lines)


VERDICT = {PASS: "PASS", FAIL: "FAIL", NOT_APPLICABLE: "n/a"}


def _write(path: Path, text: str) -> None:
    _write_bytes(path, text.encode())


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot write: {exc.strerror}") from None


def _verifier(args: argparse.Namespace, signer: CryptoSigner | None) -> TaskVerifier:
    """The chain, manifest and evidence source the arguments name: ``--config`` (a
    regulator's node.json) gives chain and manifest and, without ``--transcripts``, the
    node that fetches every participant's evidence; else ``--chain`` and ``--manifest``."""
    config: Path | None = getattr(args, "config", None)
    if config is None:
        if args.chain is None or args.manifest is None:
            raise InvalidInput(
                "chain", "give --config (a regulator's node.json) or both --chain and --manifest"
            )
        chain, deployment, _ = _open(args)
        return TaskVerifier(chain, deployment, None, signer, args.confirmations)
    from scripts.audit_fetch_command import RegulatorNode  # imports `node`: only when used

    regulator = RegulatorNode(config, getattr(args, "timeout", 30.0), getattr(args, "settle", 30.0))
    if args.chain is not None and args.chain != regulator.config.chain_url:
        raise InvalidInput(
            "chain", f"--chain differs from the config's {regulator.config.chain_url}"
        )
    if args.transcripts is None:
        regulator.require_regulator()
    return TaskVerifier(
        regulator.chain,
        regulator.deployment,
        regulator if args.transcripts is None else None,
        signer,
        args.confirmations,
    )


def audit_verify(args: argparse.Namespace) -> int:
    task_id = as_bytes32(args.task, "task")
    transcripts = load_transcripts(args.transcripts) if args.transcripts is not None else None
    params = load_params(getattr(args, "params", None))
    sign_key: Path | None = getattr(args, "sign_key", None)
    report_path: Path | None = getattr(args, "report", None)
    prov_path: Path | None = getattr(args, "prov", None)
    if (sign_key is None) != (report_path is None):
        raise InvalidInput("report", "--sign-key and --report go together: the report is signed")
    signer = dsse.load_signer(sign_key) if sign_key is not None else None
    verifier = _verifier(args, signer)
    if transcripts is None and verifier.evidence is None:
        transcripts = {}
    disclosed = load_result(getattr(args, "params", None))
    result = verifier.verify(task_id, params, transcripts, disclosed)
    written: dict[str, str] = {}
    if result.envelope is not None and report_path is not None:
        # The exact bytes the digest is over (RFC 8785), so `sha256sum` matches it.
        _write_bytes(report_path, envelope_bytes(result.envelope))
        written["report"] = str(report_path)
    if prov_path is not None and result.prov is not None:
        _write(prov_path, result.prov)
        written["prov"] = str(prov_path)
    answer = result.to_json()
    if result.envelope is None:
        del answer["reportDigest"], answer["reportKeyId"]
    print(json.dumps({**answer, **written}, indent=2))
    if not result.found:
        # The report still shows the deployment checks (was the manifest right?), but
        # a task the chain never saw must not read as a quiet list of checks.
        deployment, chain = verifier.deployment, verifier.chain
        print(
            f"provnet: error: task: no such task on chain: 0x{task_id.hex()} (TaskRegistry "
            f"{deployment.address('TaskRegistry')}, chain {chain.chain_id})",
            file=sys.stderr,
        )
        return 1
    sys.stdout.flush()  # the JSON first, then the summary, also when both go to one file
    print(_summary(result), file=sys.stderr)
    return 0 if result.verified else 1


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
