"""`provnet chain deploy`: genesis file in, deployment manifest out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ledger.chain import Chain
from ledger.deploy import GenesisMember, Governance, deploy, validate
from ledger.ids import InvalidInput, as_bytes32, name_id
from ledger.jsonfile import read_json
from ledger.keys import new_account, password_from, read_keystore
from ledger.roles import parse_roles
from ledger.transactions import Sender

DEV_FUNDING_WEI = 10**21


#: Genesis-file keys of the governance settings other than the threshold, with their
#: `Governance` fields. Each is optional; the default is the recommended production value.
_GOVERNANCE_KEYS = (
    ("minApprovals", "min_approvals"),
    ("proposalLifetimeSeconds", "proposal_lifetime_seconds"),
    ("timelockSeconds", "timelock_seconds"),
)


def load_genesis(path: Path) -> tuple[Governance, list[GenesisMember]]:
    """Parse and fully validate a genesis file before anything touches a chain.

    Format: {"thresholdPercent": 67, "minApprovals": 2 (optional),
    "proposalLifetimeSeconds": 604800 (optional), "timelockSeconds": 172800 (optional;
    0 only on development chains), "members": [{"name": "Bank A",
    "roles": "provider,consumer", "admin": "0x...", "orgId": "0x..." (optional)}]}
    """
    raw: Any = read_json(path, "genesis")
    if not isinstance(raw, dict):
        raise InvalidInput("genesis", "expected a JSON object")
    threshold = raw.get("thresholdPercent")
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise InvalidInput("thresholdPercent", f"expected an integer 1..100, got {threshold!r}")
    settings: dict[str, int] = {"threshold_percent": threshold}
    for key, field in _GOVERNANCE_KEYS:
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(key, f"expected an integer, got {value!r}")
            settings[field] = value
    governance = Governance(**settings)
    members_raw = raw.get("members")
    if not isinstance(members_raw, list):
        raise InvalidInput("members", "expected a list of organisations")
    members = []
    for i, entry in enumerate(members_raw):
        if not isinstance(entry, dict):
            raise InvalidInput(f"members[{i}]", "expected an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"members[{i}].name", f"expected non-empty text, got {name!r}")
        roles_text = entry.get("roles")
        if not isinstance(roles_text, str):
            raise InvalidInput(f"members[{i}].roles", "expected e.g. 'provider,consumer'")
        try:
            roles = parse_roles(roles_text)
        except ValueError as exc:
            raise InvalidInput(f"members[{i}].roles", str(exc).removeprefix("roles: ")) from None
        org_id = (
            as_bytes32(entry["orgId"], f"members[{i}].orgId")
            if "orgId" in entry
            else name_id("org", name)
        )
        members.append(GenesisMember(org_id, name, roles, str(entry.get("admin"))))
    return governance, validate(governance, members)


def deploy_command(args: argparse.Namespace) -> int:
    governance, members = load_genesis(args.genesis)
    if bool(args.keystore) == bool(args.dev_account):
        raise InvalidInput("--keystore/--dev-account", "give exactly one")
    chain = Chain.connect(args.chain)
    if args.keystore:
        account = read_keystore(args.keystore, password_from())
    else:
        account = new_account()
        chain.fund(account.address, DEV_FUNDING_WEI)
    deployment = deploy(chain, Sender(chain, account), governance, members)
    deployment.save(args.out)
    print(f"deployed to chain {chain.chain_id}; manifest written to {args.out}")
    return 0
