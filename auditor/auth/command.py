"""``provnet auditor token``: sign in to an auditor with a keystore, print the token.

The token goes alone to stdout (``TOKEN=$(provnet auditor token ...)`` for curl, or to
paste into the pages' sign-in form); who it speaks for goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the auditor's base URL (http://host:port)")
    parser.add_argument(
        "--key", required=True, type=Path, help="keystore of an org admin or node key"
    )
    parser.add_argument(
        "--password-env",
        default="PROVNET_ADMIN_PASSWORD",
        help="environment variable holding the keystore password",
    )


def auditor_token(args: argparse.Namespace) -> int:
    import httpx

    from auditor.auth.client import SignInError, sign_in
    from ledger.keys import password_from, read_keystore

    account = read_keystore(args.key, password_from(args.password_env))
    base = str(args.url).rstrip("/")
    with httpx.Client(timeout=10.0) as http:
        try:
            token = sign_in(base, account, client=http)
        except SignInError as exc:
            print(f"provnet: sign-in refused: {exc}", file=sys.stderr)
            return 1
        who = http.get(f"{base}/v1/auth/session", headers={"Authorization": f"Bearer {token}"})
    if who.status_code == 200:
        p = who.json().get("principal", {})
        kind = "regulator" if p.get("isRegulator") else "member"
        print(
            f"signed in as {p.get('address')} of {p.get('orgName')} ({kind}) "
            f"until {p.get('expiresAt')} (Unix seconds)",
            file=sys.stderr,
        )
    print(token)
    return 0
