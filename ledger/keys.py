"""Local Ethereum keys in standard (Web3 Secret Storage) keystore files.

A node's key never leaves its machine: transactions are signed locally with
eth-account. The keystore password comes from an environment variable named in the
config (so services start unattended) or an interactive prompt.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.ids import InvalidInput
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


def password_from(env_name: str = PASSWORD_ENV, prompt: bool = True) -> str:
    value = os.environ.get(env_name)
    if value:
        return value
    if prompt:
        return getpass.getpass(f"keystore password ({env_name} not set): ")
    raise InvalidInput(env_name, "environment variable not set")
