"""`provnet audit fetch`: a regulator's node collects every participant's transcript of a task.

`provnet audit verify --transcripts DIR` needs each participant's recorded transcript,
and a participant serves it only to an active node of a REGULATOR organisation that asks
over mutual TLS with a signed, single-use request (`node.peer.evidence_service`). This
verb is that request, made from the regulator's node directory: its keystore signs, its
registered TLS identity authenticates, and the list of participants comes from the chain,
never from the task's creator, so a creator cannot leave a participant out of an audit.

What is written is what was served (`<node address>.json`, the format
`scripts.audit_command.load_transcripts` reads); judging it against the chain is `audit
verify`'s job. A node may still be extending its transcript for a moment after the task
ends (it records messages delivered but never read, then checkpoints), so for an ended
task each participant is asked again until one of its own anchors covers every entry it
serves and it records every message the others recorded sending it, or ``--settle``
seconds pass (a participant that went away never will: its file is written as served).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from auditor.service.verification import Evidence
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.tasks import TaskState
from ledger.deployment import Deployment
from ledger.deployment_binding import require_bound
from ledger.ids import InvalidInput, as_bytes32, hex32
from ledger.keys import keystore_address, password_from, read_keystore
from ledger.roles import Role
from ledger.transcript import MESSAGE_KINDS, chain_intact, transcript_root
from node.channel import ChannelError
from node.config import NodeConfig
from node.identity import TlsIdentity
from node.peer.evidence_service import EvidenceBundle, fetch_evidence
from node.peer.trust import ChainTrust

ENDED = frozenset({TaskState.COMPLETED, TaskState.DISPUTED, TaskState.FAILED, TaskState.EXPIRED})
SETTLE_POLL = 1.0


@dataclass
class _Fetched:
    """The latest answer of one participant, or why there is none."""

    node: str
    bundle: EvidenceBundle | None = None
    error: str | None = None

    @property
    def settled(self) -> bool:
        """Some anchor the node recorded covers every entry it served: it is done writing."""
        bundle = self.bundle
        return bundle is not None and any(
            a.tree_size == len(bundle.entries) for a in bundle.anchors
        )


def _check_out_dir(out: Path, participants: list[str]) -> None:
    """Refuse a directory holding transcripts of other nodes: `audit verify` reads every
    ``*.json`` in it, so a stale file from another task would be judged with this one."""
    if out.exists() and not out.is_dir():
        raise InvalidInput("out", f"{out} exists and is not a directory")
    if not out.exists():
        return
    own = {p.lower() for p in participants}
    strangers = sorted(p.name for p in out.glob("*.json") if p.stem.lower() not in own)
    if strangers:
        raise InvalidInput(
            "out",
            f"{out} already holds {', '.join(strangers)}, not a participant of this task; "
            "use an empty directory",
        )


class RegulatorNode:
    """A regulator's node as an evidence reader: its keystore signs the requests, its
    registered TLS identity authenticates, and the participants come from the chain.

    One fetch serves `provnet audit fetch` (which writes what was served) and the
    automatic fetch of `provnet audit verify --config` and the auditor service (which
    hand it to `auditor.service.verification.TaskVerifier` as its `EvidenceSource`).
    """

    def __init__(
        self,
        config_path: Path,
        timeout: float = 30.0,
        settle: float = 30.0,
        *,
        account: LocalAccount | None = None,
    ) -> None:
        """``account``: the node's key when the caller already decrypted it (the demo's
        own regulator node); it must be the keystore's."""
        if timeout <= 0 or settle < 0:
            raise InvalidInput("timeout", "--timeout must be > 0 and --settle >= 0")
        self.timeout, self.settle = timeout, settle
        config = NodeConfig.load(config_path)
        self.config = config
        if account is None:
            account = read_keystore(
                config.keystore, password_from(config.password_env, prompt=False)
            )
        elif account.address.lower() != keystore_address(config.keystore).lower():
            raise InvalidInput("account", f"not the key of {config.keystore}")
        self.account = account
        self.identity = TlsIdentity(config.tls_key.read_bytes(), config.tls_cert.read_bytes())
        self.chain = Chain.connect(config.chain_url)
        self.deployment = Deployment.load(config.manifest)
        self.deployment.check_artifacts()
        # The participants are read from the manifest's TaskRegistry: it must be the
        # chain's own, or a forged registry could leave a participant out of the audit.
        require_bound(self.chain, self.deployment)
        self.clients = Clients.bind(self.chain, self.deployment)
        self.trust = ChainTrust(self.clients.consortium)  # not started: read on demand

    def require_regulator(self) -> None:
        """Checked once up front rather than met as one refusal per participant."""
        consortium = self.clients.consortium
        org_id = consortium.active_node_org(self.account.address)
        if org_id == bytes(32):
            raise InvalidInput(
                "config",
                f"{self.account.address} is not an active node of an active organisation: "
                "run `provnet node register` for it",
            )
        if not consortium.has_role(org_id, int(Role.REGULATOR)):
            raise InvalidInput(
                "config",
                f"the organisation {hex32(org_id)} of node {self.account.address} lacks the "
                "REGULATOR role: only a regulator's node may read evidence",
            )

    def fetch_one(self, task_id: bytes, node: str) -> _Fetched:
        try:
            bundle = fetch_evidence(
                self.trust.peer(node),
                self.identity,
                self.account,
                task_id,
                self.chain.chain_id,
                self.deployment.address("Consortium"),
                self.timeout,
            )
        except ChannelError as exc:
            return _Fetched(node, error=f"{exc.reason}: {exc}")
        except InvalidInput as exc:  # e.g. a malformed endpoint registered on chain
            return _Fetched(node, error=f"INVALID: {exc}")
        return _Fetched(node, bundle=bundle)

    def fetch_all(
        self, task_id: bytes, participants: list[str], ended: bool
    ) -> dict[str, _Fetched]:
        """Every participant's answer; for an ended task, asked again until settled (see
        the module docstring) or `settle` seconds pass. Never raises for one node."""
        fetched = {node: self.fetch_one(task_id, node) for node in participants}
        if ended:
            deadline = time.monotonic() + self.settle
            while time.monotonic() < deadline:
                pending = _unsettled(fetched)
                if not pending:
                    break
                time.sleep(SETTLE_POLL)
                for node in pending:
                    again = self.fetch_one(task_id, node)
                    if again.bundle is not None:  # keep an earlier answer over an error
                        fetched[node] = again
        return fetched

    def __call__(self, task_id: bytes, participants: list[str]) -> Evidence:
        """The `EvidenceSource` protocol: transcripts as served, and why any is missing."""
        ended = self.clients.tasks.state(task_id) in ENDED
        fetched = self.fetch_all(task_id, participants, ended)
        return Evidence(
            {n: list(f.bundle.entries) for n, f in fetched.items() if f.bundle is not None},
            {n: f.error or "no answer" for n, f in fetched.items() if f.bundle is None},
        )


def audit_fetch(args: argparse.Namespace) -> int:
    task_id = as_bytes32(args.task, "task")
    regulator = RegulatorNode(args.config, args.timeout, args.settle)
    config, clients = regulator.config, regulator.clients
    state = clients.tasks.state(task_id)
    if state == TaskState.NONE:
        raise InvalidInput("task", f"no such task on chain: {hex32(task_id)}")
    regulator.require_regulator()
    participants = [p.node for p in clients.tasks.participants(task_id)]
    _check_out_dir(args.out, participants)
    fetched = regulator.fetch_all(task_id, participants, state in ENDED)
    if state not in ENDED:
        print(
            f"task {hex32(task_id)} is still {state.name}: its transcripts may still grow; "
            "fetch again once it has ended",
            file=sys.stderr,
        )

    args.out.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for node, got in fetched.items():
        if got.bundle is None:
            failed.append({"node": node, "error": got.error or "no answer"})
            continue
        written.append(_write(args.out, got))
    for failure in failed:
        print(f"provnet: audit fetch: {failure['node']}: {failure['error']}", file=sys.stderr)
    verify = (
        f"provnet audit verify --chain {config.chain_url} --manifest {config.manifest} "
        f"{hex32(task_id)} --transcripts {args.out}"
    )
    print(
        json.dumps(
            {
                "task": hex32(task_id),
                "state": state.name,
                "out": str(args.out),
                "transcripts": written,
                "failed": failed,
                "next": verify + " [--params result.json]",
            },
            indent=2,
        )
    )
    print(f"next: {verify} [--params result.json]", file=sys.stderr)
    return 1 if failed else 0


def _unsettled(fetched: dict[str, _Fetched]) -> list[str]:
    """Participants whose transcript may still grow: not covered by one of their own
    anchors, or missing a message another participant recorded sending them (a message
    delivered but never read is recorded when the node closes its part of the task)."""
    received: set[tuple[str, str, str, bytes]] = set()
    sent: set[tuple[str, str, str, bytes]] = set()
    for node, got in fetched.items():
        for e in got.bundle.entries if got.bundle is not None else ():
            if e.kind == "sent":
                sent.add((node.lower(), e.peer.lower(), e.step, e.digest))
            elif e.kind in MESSAGE_KINDS:
                received.add((e.peer.lower(), node.lower(), e.step, e.digest))
    answered = {n.lower(): n for n, f in fetched.items() if f.bundle is not None}
    waiting = {answered[to] for _, to, _, _ in sent - received if to in answered}
    return sorted(
        n for n, f in fetched.items() if f.bundle is not None and (not f.settled or n in waiting)
    )


def _write(out: Path, got: _Fetched) -> dict[str, Any]:
    """``<node>.json`` as served, and a summary saying whether it hangs together."""
    bundle = got.bundle
    assert bundle is not None
    entries = list(bundle.entries)
    path = out / f"{got.node}.json"
    path.write_text(json.dumps([e.to_json() for e in entries]))
    consistent = (
        chain_intact(entries)
        and bundle.tree_size == len(entries)
        and transcript_root(entries) == bundle.root
    )
    anchored = max((a.tree_size for a in bundle.anchors), default=0)
    return {
        "node": got.node,
        "file": str(path),
        "entries": len(entries),
        "anchoredEntries": anchored,
        "consistent": consistent,
    }
