"""Why a task ended the way it did, read from the chain for the task's consumer.

The consumer's node records only its own view ("the chain ended the task"); the reason
is on chain: `TaskFailed(taskId, reporter, reasonCode)` names who stopped the task and
why, whether a participant refused it (`refuseTask`, before it started), reported a
failure while it ran, or the contract itself detected a lapse. Every node and auditor
reads the same events, so the answer here is the one an auditor would give.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3

from ledger.artifacts import abi
from ledger.clients import Clients
from ledger.clients.tasks import attestation_refusal_name, reason_name
from ledger.events import Event, EventReader, Source
from ledger.ids import hex32

_REFUSE_SELECTOR = bytes(Web3.keccak(text="refuseTask(bytes32,uint16)")[:4])
# Outcomes without a reason code of their own (TaskExpired / TaskDisputed carry none).
NO_CODE = 0


def task_events(clients: Clients, task_id: bytes, first_block: int = 0) -> list[Event]:
    tasks = clients.tasks
    reader = EventReader(tasks.chain, [Source("TaskRegistry", tasks.address, abi("TaskRegistry"))])
    return [e for e in reader.read(first_block) if bytes(e.args.get("taskId", b"")) == task_id]


def _org_name(clients: Clients, node: str) -> str | None:
    org = clients.consortium.node_org(node)
    if org == bytes(32):
        return None
    return clients.consortium.org_name(org) or hex32(org)


def _sender(clients: Clients, event: Event) -> tuple[str, bytes]:
    tx = clients.tasks.chain.w3.eth.get_transaction(event.transaction_hash)  # type: ignore[arg-type]
    data = tx["input"]
    raw = bytes(data) if not isinstance(data, str) else bytes.fromhex(data.removeprefix("0x"))
    return str(tx["from"]), raw[:4]


def outcome(clients: Clients, task_id: bytes, first_block: int = 0) -> dict[str, Any]:
    """``{"failure": None | {...}, "refusals": [...], "attestationRefusals": [...]}``
    for a task, from its events.

    ``failure``: ``{"reason": NAME, "code": n, "reportedBy": address, "org": name}``;
    reasons are `ledger.clients.tasks.Reason` names, plus ``EXPIRED`` (deadline passed,
    code 0, reported by whoever called `expire`) and ``RESULTS_DIFFER`` (disputed,
    code 0). ``refusals``: the participants that refused the task before it started
    (at most one: the first refusal fails the task on chain). ``attestationRefusals``:
    each data owner that refused an attested job's enclave (`AttestationRefused`),
    ``{"node", "org", "reason", "reportDigest"}``, the reason a `node.tee.refusal.Reason`.
    """
    failure: dict[str, Any] | None = None
    refusals: list[dict[str, Any]] = []
    attestation: list[dict[str, Any]] = []
    started = False
    for event in task_events(clients, task_id, first_block):
        if event.name == "TaskStarted":
            started = True
        elif event.name == "TaskFailed":
            reporter = str(event.args["reporter"])
            code = int(event.args["reasonCode"])
            org = _org_name(clients, reporter)
            failure = {
                "reason": reason_name(code),
                "code": code,
                "reportedBy": reporter,
                "org": org,
            }
            if not started and _sender(clients, event)[1] == _REFUSE_SELECTOR:
                refusals.append(
                    {"node": reporter, "org": org, "reason": reason_name(code), "code": code}
                )
        elif event.name == "AttestationRefused":
            node = str(event.args["node"])
            attestation.append(
                {
                    "node": node,
                    "org": _org_name(clients, node),
                    "reason": attestation_refusal_name(int(event.args["reason"])),
                    "reportDigest": hex32(bytes(event.args["reportDigest"])),
                }
            )
        elif event.name in ("TaskExpired", "TaskDisputed"):
            sender = _sender(clients, event)[0]
            failure = {
                "reason": "EXPIRED" if event.name == "TaskExpired" else "RESULTS_DIFFER",
                "code": NO_CODE,
                "reportedBy": sender,
                "org": _org_name(clients, sender),
            }
    return {"failure": failure, "refusals": refusals, "attestationRefusals": attestation}
