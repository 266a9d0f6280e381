"""`provnet chain deploy` (genesis file in, deployment manifest out) and `chain fund`."""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.chain import Chain
from ledger.deploy import GenesisMember, Governance, deploy, validate
from ledger.ids import InvalidInput, as_address, as_bytes32, name_id
from ledger.jsonfile import read_json
from ledger.keys import keystore_address, new_account, password_from, read_keystore
from ledger.roles import parse_roles
from ledger.transactions import Sender
from node.config import NodeConfig

DEV_FUNDING_WEI = 10**21


#: Genesis-file keys of the governance settings other than the threshold, with their
#: `Governance` fields. Each is optional; the default is the recommended production value.
_GOVERNANCE_KEYS = (
    ("minApprovals", "min_approvals"),
    ("proposalLifetimeSeconds", "proposal_lifetime_seconds"),
    ("timelockSeconds", "timelock_seconds"),
)


#: The keys a genesis file may hold (besides comments: keys starting with "_").
_GENESIS_KEYS = frozenset({"thresholdPercent", "members", *(k for k, _ in _GOVERNANCE_KEYS)})
_MEMBER_KEYS = frozenset({"name", "roles", "admin", "orgId"})


def load_genesis(path: Path) -> tuple[Governance, list[GenesisMember]]:
    """Parse and fully validate a genesis file before anything touches a chain.

    Format: {"thresholdPercent": 67, "minApprovals": 2 (optional),
    "proposalLifetimeSeconds": 604800 (optional), "timelockSeconds": 172800 (optional;
    0 only on development chains), "members": [{"name": "Bank A",
    "roles": "provider,consumer", "admin": "0x...", "orgId": "0x..." (optional)}]}.
    Keys starting with "_" are comments (`provnet consortium init` writes "_comment"
    keys explaining each field) and ignored; any other unknown key is refused, so a
    misspelt "timelockSecond" cannot silently fall back to the default.
    """
    return parse_genesis(read_json(path, "genesis"))


def _refuse_unknown(entry: dict[str, Any], known: frozenset[str], where: str) -> None:
    for key in entry:
        if not str(key).startswith("_") and key not in known:
            expected = ", ".join(sorted(known))
            raise InvalidInput(f"{where}{key}", f"unknown key (expected one of {expected})")


def parse_genesis(raw: Any) -> tuple[Governance, list[GenesisMember]]:
    """`load_genesis` on an already parsed JSON value (`consortium init` checks its own)."""
    if not isinstance(raw, dict):
        raise InvalidInput("genesis", "expected a JSON object")
    _refuse_unknown(raw, _GENESIS_KEYS, "")
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
        _refuse_unknown(entry, _MEMBER_KEYS, f"members[{i}].")
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
    print(
        f"next, for each organisation's node: provnet node init --dir DIR --name NAME "
        f"--chain {args.chain} --manifest {args.out}"
    )
    return 0


def fund_target(target: str) -> str:
    """The address behind a `chain fund` target: an address, a keystore file, or a node
    directory / node.json (its keystore's address). Keystores are read without their
    password, from their clear "address" field."""
    if target.startswith("0x"):
        return str(as_address(target, "target"))
    path = Path(target)
    if path.is_dir():
        path = path / "node.json"
    if not path.is_file():
        raise InvalidInput("target", f"{target} is no address, keystore file or node directory")
    raw = read_json(path, "target")
    if isinstance(raw, dict) and "keystore" in raw and "chain_url" in raw:
        return keystore_address(NodeConfig.load(path).keystore)
    return keystore_address(path)


def chain_fund(args: argparse.Namespace) -> int:
    """Give development accounts ether from the chain's unlocked account."""
    if args.eth <= 0:
        raise InvalidInput("eth", f"must be positive, got {args.eth}")
    addresses = [fund_target(t) for t in args.targets]  # every target checked first
    chain = Chain.connect(args.chain)
    wei = int(Decimal(str(args.eth)) * 10**18)
    for address in addresses:
        chain.fund(address, wei)
        balance = int(chain.w3.eth.get_balance(chain.w3.to_checksum_address(address)))
        print(f"funded {address} with {args.eth} ETH (balance {balance} wei)")
    return 0
