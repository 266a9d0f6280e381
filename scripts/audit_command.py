"""`provnet task show` and `provnet audit verify`: read-only views of a deployment.

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

from auditor.replay import deployment_checks, task_history
from auditor.verifier import verify_task
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


def audit_verify(args: argparse.Namespace) -> int:
    transcripts = load_transcripts(args.transcripts)
    params = load_params(getattr(args, "params", None))
    chain, deployment, task_id = _open(args)
    history = task_history(chain, deployment, task_id, args.confirmations)
    # The manifest's claims (artifact digests) were checked in `_open`; these check the
    # chain itself: the code at its addresses and how the contracts point at each other.
    bound = deployment_checks(chain, deployment, args.confirmations)
    checks = verify_task(history, transcripts, params, deployment=bound)
    verified = all(c.passed for c in checks) and history.created() is not None
    outcome = next(
        (c.evidence["outcome"] for c in checks if "outcome" in c.evidence),
        {"state": "COMPLETED"}
        if any(e.name == "TaskCompleted" for e in history.task_events)
        else None,
    )
    print(
        json.dumps(
            {
                "task": "0x" + task_id.hex(),
                "chainId": chain.chain_id,
                "outcome": outcome,
                "checks": [c.to_json() for c in checks],
                "verified": verified,
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
    return 0 if verified else 1
