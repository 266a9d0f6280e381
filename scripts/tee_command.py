"""`provnet tee result-key|open-result`: the grantee's side of results-not-stored mode.

A `tee-join` task whose parameters carry `result_key` has the enclave seal its output to
that X25519 key, so the host node relays and stores only ciphertext. The grantee makes
the key pair once (`result-key`, the private key stays in a file of its own) and opens
a completed task's output offline from the host's `provnet task result` answer
(`open-result`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ledger.ids import InvalidInput
from ledger.jsonfile import read_json
from ledger.task_params import ParamsEnvelope
from node.algorithms import tee


def tee_result_key(args: argparse.Namespace) -> int:
    path: Path = args.out
    if path.exists():
        raise InvalidInput("out", f"{path} exists: keep that key, or choose another file")
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    print(
        json.dumps(
            {
                "privateKey": str(path),
                "resultKey": public,
                "next": f'add "result_key": "{public}" to the tee-join parameters; once the '
                f"task completes: provnet task result ... > result.json, then provnet tee "
                f"open-result --key {path} result.json",
            },
            indent=2,
        )
    )
    return 0


def _private_key(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise InvalidInput("key", f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, X25519PrivateKey):
        raise InvalidInput("key", f"{path}: not an X25519 key (made by provnet tee result-key)")
    return key


def tee_open_result(args: argparse.Namespace) -> int:
    key = _private_key(args.key)
    answer = read_json(args.result, "result")
    if not isinstance(answer, dict) or not {"result", "params"} <= set(answer):
        raise InvalidInput("result", "expected the host's `provnet task result` answer")
    params = tee.Params.from_json(ParamsEnvelope.from_json(answer["params"], "params").params)
    output = answer["result"].get("output") if isinstance(answer["result"], dict) else None
    if not isinstance(output, dict):
        raise InvalidInput("result", "the answer holds no tee-join output")
    try:
        opened = tee.open_result(key, params, output)
    except ValueError as exc:
        raise InvalidInput("key", str(exc)) from None
    print(json.dumps(opened, indent=2))
    return 0
