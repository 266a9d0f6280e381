"""Local Ethereum keys in standard (Web3 Secret Storage) keystore files.

A node's key never leaves its machine: transactions are signed locally with
eth-account. The keystore password comes from an environment variable named in the
config (so services start unattended) or an interactive prompt when there is a terminal.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.ids import InvalidInput, as_address
from ledger.jsonfile import read_json

PASSWORD_ENV = "PROVNET_KEY_PASSWORD"


def new_account() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def write_keystore(account: LocalAccount, path: Path, password: str) -> None:
    """Encrypt to a new file; refuses to overwrite, and the file is private to its owner."""
    if not password:
        raise InvalidInput("password", "must not be empty")
    keystore = Account.encrypt(account.key, password, kdf="scrypt")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keystore, fh)


def read_keystore(path: Path, password: str) -> LocalAccount:
    keystore = read_json(path, "keystore")
    try:
        key = Account.decrypt(keystore, password)
    except ValueError:
        raise InvalidInput("keystore", f"wrong password or corrupt file {path}") from None
    account: LocalAccount = Account.from_key(key)
    return account


def keystore_address(path: Path) -> str:
    """The address a keystore file holds, read without its password.

    Standard keystores carry the address in clear (the ``address`` field), so a genesis
    or a funding command can name an admin by its keystore file without unlocking it.
    """
    keystore = read_json(path, "keystore")
    address = keystore.get("address") if isinstance(keystore, dict) else None
    if not isinstance(address, str):
        raise InvalidInput("keystore", f'{path} has no "address" field')
    return str(as_address(address if address.startswith("0x") else "0x" + address, "keystore"))


def password_from(env_name: str = PASSWORD_ENV, prompt: bool = True, confirm: bool = False) -> str:
    """The keystore password: from `env_name`, else typed at a terminal, else an error.

    Without a terminal (a pipe, a service, CI) there is no one to answer a prompt, so the
    error names the variable to set instead of failing with EOFError. `confirm` asks
    twice, for a new key whose password a typo would otherwise lose.
    """
    value = os.environ.get(env_name)
    if value:
        return value
    if not (prompt and sys.stdin is not None and sys.stdin.isatty()):
        raise InvalidInput(
            env_name,
            "environment variable not set (and no terminal to ask on): "
            f"export {env_name}=<password>",
        )
    try:
        first = getpass.getpass(f"keystore password ({env_name} not set): ")
        if confirm and getpass.getpass("the same password again: ") != first:
            raise InvalidInput("password", "the two passwords differ")
    except EOFError:
        raise InvalidInput(env_name, "environment variable not set and no password typed") from None
    if not first:
        raise InvalidInput("password", "must not be empty")
    return first
