"""A task's verification as an in-toto Statement v1.

The subject is what the verification speaks about: the task's result digests (one
per distinct digest submitted or completed with). A task that ended without a result
has none, and an in-toto subject may not be empty, so its subject is then the task id
itself. The predicate lists every check with its verdict and evidence, the verifier's
version, the chain id and the blocks (number and hash) whose events were used, so a
reader can re-run the verification against exactly that chain state and notice a
reorg that changed it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from auditor.verify.check import Check, maybe_bytes
from auditor.verify.history import TaskHistory, hex_
from ledger.transcript import evidence_log_id

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://provnet.dev/attestation/task-verification/v1"
VERIFIER_ID = "https://provnet.dev/auditor"
#: DigestSet key of a provnet result digest: SHA-256 over a domain-separated canonical
#: encoding (DESIGN §4), not over a file; named so nobody hashes a file to match it.
RESULT_DIGEST_KEY = "provnetSha256"
TASK_ID_KEY = "provnetTaskId"


def verifier_version() -> str:
    try:
        return importlib.metadata.version("provnet")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def result_digests(h: TaskHistory) -> list[bytes]:
    """Distinct well-formed result digests the task's events carry, in chain order."""
    found: list[bytes] = []
    for e in h.task_events:
        if e.name in ("ResultSubmitted", "TaskCompleted"):
            value = maybe_bytes(e.args.get("resultDigest"))
            if value is not None and len(value) == 32 and value not in found:
                found.append(value)
    return found


def blocks_used(h: TaskHistory) -> dict[int, bytes]:
    """Number -> hash of every block holding one of the task's events or a checkpoint of
    a participant's evidence log of the task."""
    logs = set()
    for node, *_rest in h.participants():
        try:
            logs.add(evidence_log_id(node, h.task_id))
        except ValueError:
            continue  # a malformed participant address has no log (its check fails)
    used = {e.block_number: e.block_hash for e in h.task_events}
    for e in h.all_events:
        if e.contract == "AnchorLog" and maybe_bytes(e.args.get("logId")) in logs:
            used[e.block_number] = e.block_hash
    return dict(sorted(used.items()))


def subject(h: TaskHistory) -> list[dict[str, Any]]:
    task = hex_(h.task_id)
    digests = result_digests(h)
    if not digests:
        return [{"name": f"provnet:task:{task}", "digest": {TASK_ID_KEY: h.task_id.hex()}}]
    return [
        {"name": f"provnet:task:{task}:result", "digest": {RESULT_DIGEST_KEY: d.hex()}}
        for d in digests
    ]


def statement(
    history: TaskHistory,
    checks: Sequence[Check],
    chain_id: int,
    contracts: Mapping[str, str],
    read_up_to: tuple[int, bytes] | None = None,
    verified_at: datetime | None = None,
) -> dict[str, Any]:
    """The in-toto Statement v1 of one task's verification (a JSON-ready dict).

    ``contracts`` are the deployment's addresses by name; ``read_up_to`` the (number,
    hash) of the block the events were read up to (the confirmed head)."""
    failed = [c.name for c in checks if c.failed]
    when = (verified_at or datetime.now(UTC)).astimezone(UTC)
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {"provnet": verifier_version()}},
        "timeVerified": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "task": hex_(history.task_id),
        "verificationResult": "FAILED" if failed or history.created() is None else "PASSED",
        "failedChecks": failed,
        "chain": {
            "chainId": chain_id,
            "contracts": dict(sorted(contracts.items())),
            "blocks": [{"number": n, "hash": hex_(b)} for n, b in blocks_used(history).items()],
            "readUpTo": None
            if read_up_to is None
            else {"number": read_up_to[0], "hash": hex_(read_up_to[1])},
        },
        "checks": [c.to_json() for c in checks],
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject(history),
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
