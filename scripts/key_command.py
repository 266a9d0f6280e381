"""`provnet key new`: an encrypted keystore for an organisation admin (or any account).

Admins sign governance votes, node registrations and algorithm approvals from their own
machine, so the key is made locally and only its address is ever shared (a genesis file
and `provnet chain fund` read it from the keystore without the password).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.ids import InvalidInput
from ledger.keys import PASSWORD_ENV, new_account, password_from, write_keystore


def key_new(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists():
        raise InvalidInput("out", f"{out} already exists; refusing to overwrite a key")
    password = password_from(args.password_env or PASSWORD_ENV, confirm=True)
    account = new_account()
    write_keystore(account, out, password)
    print(account.address)
    print(
        f"keystore written to {out}; use it as a genesis admin "
        f"(provnet consortium init --member NAME:ROLES:{out}) or fund it on a development "
        f"chain (provnet chain fund --chain URL {out})"
    )
    return 0
