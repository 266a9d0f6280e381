"""`provnet auditor init` and `provnet auditor run`: the auditor service of a regulator.

``init`` writes ``auditor.json`` (chain and manifest taken from the regulator's node
config, the index database, the listen address, confirmations, the checkpoint interval)
and an Ed25519 report key (``report-key.pem``, private to its owner, and
``report-key.pub.pem`` for whoever checks a report), then prints the next step.

``run`` is the whole service in one process (`auditor.service.runner.AuditorService`):
the indexer following the chain, the API and pages on ``listen``, and the regulators'
query log checkpointed into AnchorLog every ``checkpoint_interval`` seconds by the
regulator node's account. The same node fetches participants' evidence for each
verification (regulator-signed requests over mutual TLS): that part needs `node`, so it
is built here and injected. SIGTERM or SIGINT stops everything cleanly.

This module is imported when the CLI builds its parser: the heavy imports wait for the
verb to run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from auditor.service.runner import AuditorService

CONFIG_NAME = "auditor.json"
KEY_NAME = "report-key.pem"
PUBLIC_KEY_NAME = "report-key.pub.pem"
DEFAULT_LISTEN = "127.0.0.1:8600"


def add_auditor_verbs(
    auditor_sub: Any, lazy: Callable[[str, str], Callable[[argparse.Namespace], int]]
) -> None:
    """`auditor init` and `auditor run` on the CLI's `auditor` sub-parsers."""
    init = auditor_sub.add_parser("init", help="write auditor.json and a report-signing key")
    init.add_argument("--node-config", required=True, type=Path, help="the regulator's node.json")
    init.add_argument("--dir", required=True, type=Path, help="directory for auditor.json")
    init.add_argument("--database", help="index database URL (default: SQLite in --dir)")
    init.add_argument("--listen", default=DEFAULT_LISTEN, help="API and pages host:port")
    init.add_argument("--confirmations", type=int, default=0, help="blocks behind head")
    init.add_argument(
        "--checkpoint-interval", type=float, default=300.0, help="s between query-log anchors"
    )
    init.set_defaults(handler=lazy("scripts.auditor_command", "auditor_init"))
    run = auditor_sub.add_parser("run", help="index, serve the API and pages, anchor the log")
    run.add_argument("--config", required=True, type=Path, help="the auditor.json")
    run.set_defaults(handler=lazy("scripts.auditor_command", "auditor_run"))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def auditor_init(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditor.service.config import AuditorConfig, split_listen
    from ledger.ids import InvalidInput
    from node.config import NodeConfig

    directory: Path = args.dir.resolve()
    config_path = directory / CONFIG_NAME
    if config_path.exists() or (directory / KEY_NAME).exists():
        raise InvalidInput("dir", f"{directory} already holds an auditor; use a new directory")
    split_listen(args.listen)
    if args.confirmations < 0 or args.checkpoint_interval <= 0:
        raise InvalidInput(
            "confirmations", "--confirmations must be >= 0, --checkpoint-interval > 0"
        )
    node_config_path: Path = args.node_config.resolve()
    node = NodeConfig.load(node_config_path)  # refuses a file that is not a node config
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _write_private(
        directory / KEY_NAME,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    (directory / PUBLIC_KEY_NAME).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = AuditorConfig(
        chain_url=node.chain_url,
        manifest=node.manifest.resolve(),
        database_url=args.database or f"sqlite:///{directory / 'index.db'}",
        listen=args.listen,
        node_config=node_config_path,
        report_key=directory / KEY_NAME,
        report_public_key=directory / PUBLIC_KEY_NAME,
        confirmations=args.confirmations,
        checkpoint_interval=args.checkpoint_interval,
        query_log_name=f"auditor-query-log-{secrets.token_hex(4)}",
    )
    config.save(config_path)
    print(json.dumps({"config": str(config_path), **config.to_json()}, indent=2))
    print(
        f"next: provnet auditor run --config {config_path}  (the regulator's node key is read "
        f"with ${node.password_env}; reports are checked with {directory / PUBLIC_KEY_NAME})",
        file=sys.stderr,
    )
    return 0


def build_service(config_path: Path, account: LocalAccount | None = None) -> AuditorService:
    """The `AuditorService` an ``auditor.json`` describes, not started. ``account``: the
    regulator node's key when the caller holds it already (skips a keystore decrypt)."""
    from auditor.report import dsse
    from auditor.service.config import AuditorConfig
    from auditor.service.runner import AuditorService
    from ledger.chain import Chain
    from ledger.clients import Clients
    from ledger.ids import InvalidInput
    from ledger.transactions import Sender
    from scripts.audit_fetch_command import RegulatorNode

    config = AuditorConfig.load(config_path)
    regulator = RegulatorNode(
        config.node_config, config.fetch_timeout, config.fetch_settle, account=account
    )
    if regulator.config.chain_url != config.chain_url:
        raise InvalidInput(
            "config.chain_url",
            f"the auditor reads {config.chain_url}, its regulator node "
            f"{regulator.config.chain_url}",
        )
    regulator.require_regulator()
    signer = dsse.load_signer(config.report_key)
    # The checkpointer sends transactions from its own thread: its own chain connection.
    anchor_chain = Chain.connect(config.chain_url)
    anchors = Clients.bind(
        anchor_chain, regulator.deployment, Sender(anchor_chain, regulator.account)
    ).anchors
    return AuditorService(
        config,
        regulator.chain,
        regulator.deployment,
        evidence=regulator,
        signer=signer,
        anchors=anchors,
    )


def auditor_run(args: argparse.Namespace) -> int:
    service = build_service(args.config)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    service.start()
    try:
        print(
            json.dumps(
                {
                    "url": service.url,
                    "pages": service.url + "/",
                    "api": service.url + "/docs",
                    "database": service.config.database_url,
                    "reportKeyId": service.verifier.signer.public_key.keyid
                    if service.verifier.signer is not None
                    else None,
                }
            ),
            flush=True,
        )
        print(
            f"auditor serving on {service.url} (pages at /, API docs at /docs); sign in with "
            f"`provnet auditor token --url {service.url} --key KEYSTORE.json`; "
            "stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        service.stop()
    print("auditor stopped", file=sys.stderr, flush=True)
    return 0
