"""`provnet org list|show`: organisations by name, with their ids, roles and nodes.

A grant names its grantee by organisation id; this is where an operator reads it (or
simply passes the name: the node resolves it the same way, from the chain).
"""

from __future__ import annotations

import argparse
import json
import sys

from ledger.directory import organisations, resolve_org
from scripts.chain_source import open_clients


def org_list(args: argparse.Namespace) -> int:
    clients, deployment = open_clients(args)
    entries = organisations(clients.consortium, deployment.first_block)
    print(json.dumps([e.to_json() for e in entries], indent=2))
    print(
        f"{len(entries)} organisation(s); grant one a dataset with: provnet grant create "
        "--config NODE.json --dataset NAME --grantee 'ORG NAME' ...",
        file=sys.stderr,
    )
    return 0


def org_show(args: argparse.Namespace) -> int:
    clients, deployment = open_clients(args)
    entry = resolve_org(organisations(clients.consortium, deployment.first_block), args.org)
    print(json.dumps(entry.to_json(), indent=2))
    if not entry.active_nodes():
        print(
            f"{entry.name} has no active node yet: its admin runs provnet node register",
            file=sys.stderr,
        )
    return 0
