"""The demo's last act: the regulator's auditor service on the demo's chain.

`provnet auditor init` (the real verb) writes the auditor's config beside the
regulator's node, then the service (`scripts.auditor_command.build_service`: indexer,
API and pages, query-log checkpointer) runs in this process with uvicorn on a free
127.0.0.1 port. It indexes the chain; the regulator's admin signs in with the auditor's
EIP-712 challenge (`auditor.auth.client.sign_in`) and asks the API to verify the demo's
task, which makes the regulator's node fetch every participant's evidence over mutual
TLS; the regulator's own query is then anchored in AnchorLog. What comes back is the
page address and the report digest the demo prints.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from auditor.auth.client import sign_in
from auditor.service.config import AuditorConfig
from ledger.chain import Chain
from ledger.ids import hex32
from scripts.anvil import free_port
from scripts.auditor_command import auditor_init, build_service

#: The demo's index catches up in fractions of a second, not the service's default 1 s.
POLL_INTERVAL = 0.2
#: The demo's task has ended and every node has finished when the auditor asks.
FETCH_TIMEOUT = 15.0
FETCH_SETTLE = 5.0


def audit_through_service(
    chain: Chain,
    base: Path,
    node_config: Path,
    admin: LocalAccount,
    node_account: LocalAccount,
    task_id: bytes,
    disclosed: Mapping[str, Any] | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Start the auditor, index, verify ``task_id`` through its API; its answer.
    ``admin`` signs in (the regulator organisation's admin); ``node_account`` is the
    regulator node's key, already decrypted by the demo's running node."""
    directory = base / "auditor"
    args = argparse.Namespace(
        node_config=node_config,
        dir=directory,
        database=None,
        listen=f"127.0.0.1:{free_port()}",
        confirmations=0,
        checkpoint_interval=3600.0,  # the demo anchors its query log once, itself
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        auditor_init(args)
    config_path = directory / "auditor.json"
    config = AuditorConfig.load(config_path)
    config = dataclasses.replace(
        config,
        poll_interval=POLL_INTERVAL,
        fetch_timeout=FETCH_TIMEOUT,
        fetch_settle=FETCH_SETTLE,
    )
    config.save(config_path)
    service = build_service(config_path, node_account)
    service.start()
    try:
        service.wait_indexed(chain.head())
        status = service.store.status()
        say(
            f"auditor: serving {service.url} (pages at /, API docs at /docs), index complete "
            f"up to block {status.complete_up_to}"
        )
        token = sign_in(service.url, admin)
        task = hex32(task_id)
        with httpx.Client(timeout=120.0) as http:
            answer = http.post(
                f"{service.url}/v1/tasks/{task}/verification",
                json=dict(disclosed) if disclosed is not None else None,
                headers={"Authorization": f"Bearer {token}"},
            )
        if answer.status_code != 201:
            raise RuntimeError(f"the auditor refused the verification: {answer.text}")
        verification: dict[str, Any] = answer.json()
        checkpoint = service.checkpoint_once()  # the regulator's query, anchored
        page = f"{service.url}/tasks/{task}"
        say(
            f"auditor: verification through the API: verified {verification['verified']}, "
            f"{len(verification['checks'])} checks, evidence fetched from every participant "
            "by the regulator's node"
        )
        if checkpoint is not None:
            say(
                f"auditor: the regulator's query log ({checkpoint.get('treeSize')} entries) "
                "anchored in AnchorLog"
            )
        say(f"auditor: task page {page}")
        say(f"auditor: report digest {verification['reportDigest']}")
        return {
            "url": service.url,
            "page": page,
            "reportDigest": verification["reportDigest"],
            "reportKeyId": verification.get("reportKeyId"),
            "verified": verification["verified"],
            "failedChecks": verification["failedChecks"],
            "evidenceProblems": verification["evidenceProblems"],
            "queryLogCheckpoint": checkpoint,
        }
    finally:
        service.stop()
