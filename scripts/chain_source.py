"""Where read-mostly verbs find the chain: a node's config, or a chain URL and manifest.

`org`, `algorithm` and similar verbs are run by operators who may have a node (then its
node.json says everything) or only the consortium's manifest (an admin's laptop, an
auditor); both spellings lead to the same bound clients.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.deployment import Deployment
from ledger.ids import InvalidInput
from ledger.keys import password_from, read_keystore
from ledger.transactions import Sender
from node.config import NodeConfig

ADMIN_PASSWORD_ENV = "PROVNET_ADMIN_PASSWORD"


def add_chain_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a node's node.json (chain and manifest)")
    parser.add_argument("--chain", help="JSON-RPC URL of the chain (with --manifest)")
    parser.add_argument("--manifest", type=Path, help="deployment manifest (with --chain)")


def add_admin_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin-keystore", type=Path, help="the organisation admin's keystore")
    parser.add_argument(
        "--admin-password-env",
        default=ADMIN_PASSWORD_ENV,
        help=f"env var of the admin keystore password (default {ADMIN_PASSWORD_ENV})",
    )


def chain_and_manifest(args: argparse.Namespace) -> tuple[str, Path]:
    """(chain URL, manifest path) from exactly one of --config / --chain with --manifest."""
    if args.config is not None:
        if args.chain is not None or args.manifest is not None:
            raise InvalidInput("--config", "give either --config or --chain with --manifest")
        config = NodeConfig.load(args.config)
        return config.chain_url, config.manifest
    if args.chain is None or args.manifest is None:
        raise InvalidInput(
            "--chain/--manifest", "give --config node.json, or both --chain URL and --manifest FILE"
        )
    return str(args.chain), Path(args.manifest)


def open_clients(
    args: argparse.Namespace, sender_keystore: Path | None = None
) -> tuple[Clients, Deployment]:
    """Bound clients (acting as the admin when a keystore is given) and the deployment."""
    url, manifest = chain_and_manifest(args)
    deployment = Deployment.load(manifest)
    deployment.check_artifacts()
    account = None
    if sender_keystore is not None:
        account = read_keystore(sender_keystore, password_from(args.admin_password_env))
    chain = Chain.connect(url)
    sender = Sender(chain, account) if account is not None else None
    return Clients.bind(chain, deployment, sender), deployment
