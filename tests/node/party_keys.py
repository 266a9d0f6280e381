"""Node keys for protocol tests that name parties freely: a fixed key per name, and the
key ring that maps names to addresses for signature checks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from eth_account import Account

from node.crypto import secagg


def account_of(name: str) -> Any:
    return Account.from_key(hashlib.sha256(b"test-node-key:" + name.encode()).digest())


def identity(name: str) -> secagg.Identity:
    return secagg.Identity(account_of(name))


def key_ring(names: Sequence[str]) -> secagg.KeyRingVerifier:
    return secagg.KeyRingVerifier({n: account_of(n).address for n in names})
