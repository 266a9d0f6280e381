"""`provnet consortium init`: a commented genesis file, checked, and the next commands.

The genesis format was documented only in a docstring; writing it from the command
line, with a "_comment" beside each section, lets a newcomer read what every field
means in the file itself (`load_genesis` skips keys starting with "_").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ledger.deploy import Governance
from ledger.ids import InvalidInput, as_address
from ledger.jsonfile import write_json_atomic
from ledger.keys import keystore_address
from scripts.deploy_command import parse_genesis

DEV_MIN_APPROVALS = 2

GOVERNANCE_COMMENT = {
    "thresholdPercent": "share of non-removed members whose votes carry a proposal "
    "(67 of 3 members is all 3; use 66 for two of three)",
    "minApprovals": "votes a proposal needs at least, whatever the percentage; also the "
    "objections that cancel a queued proposal",
    "proposalLifetimeSeconds": "a proposal not carried within this time expires",
    "timelockSeconds": "a carried proposal waits this long for objections or a "
    "regulator's veto; 0 executes at once (development chains only)",
    "members": "the founding organisations, active from deployment",
}
MEMBER_COMMENT = (
    "name: shown everywhere and hashed into the org id; roles: any of provider, consumer, "
    "regulator (comma-separated); admin: the address that votes and registers this "
    "organisation's nodes (provnet key new makes one)"
)


def parse_member(text: str, index: int) -> dict[str, Any]:
    """NAME:ROLES:ADMIN, split from the right so a name may contain ':'."""
    field = f"member[{index}]"
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InvalidInput(field, f"expected NAME:ROLES:ADMIN, got {text!r}")
    name, roles, admin = (p.strip() for p in parts)
    if admin.startswith("0x"):
        address = str(as_address(admin, f"{field}.admin"))
    elif Path(admin).is_file():
        address = keystore_address(Path(admin))
    else:
        raise InvalidInput(f"{field}.admin", f"{admin!r} is neither an address nor a keystore file")
    return {"_comment": MEMBER_COMMENT, "name": name, "roles": roles, "admin": address}


def genesis_document(members: list[dict[str, Any]], threshold: int, dev: bool) -> dict[str, Any]:
    production = Governance(threshold_percent=threshold)
    return {
        "_comment": GOVERNANCE_COMMENT,
        "thresholdPercent": threshold,
        "minApprovals": DEV_MIN_APPROVALS if dev else production.min_approvals,
        "proposalLifetimeSeconds": production.proposal_lifetime_seconds,
        "timelockSeconds": 0 if dev else production.timelock_seconds,
        "members": members,
    }


def consortium_init(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists():
        raise InvalidInput("out", f"{out} already exists; refusing to overwrite it")
    if not args.member:
        raise InvalidInput("member", "give at least one --member NAME:ROLES:ADMIN")
    members = [parse_member(text, i) for i, text in enumerate(args.member)]
    document = genesis_document(members, args.threshold, args.dev)
    parse_genesis(document)  # the very check `chain deploy` makes, before writing
    write_json_atomic(out, document)
    admins = " ".join(m["admin"] for m in members)
    print(f"genesis for {len(members)} organisation(s) written to {out}")
    print("next, on a development chain (anvil):")
    print(f"  provnet chain fund --chain http://127.0.0.1:8545 {admins}")
    print(
        f"  provnet chain deploy --chain http://127.0.0.1:8545 --genesis {out} "
        "--dev-account --out manifest.json"
    )
    return 0
