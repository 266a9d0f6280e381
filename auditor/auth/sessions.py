"""Challenges and tokens: the auditor's sign-in state, held in memory.

``challenge(address)`` hands out EIP-712 typed data with a fresh 32-byte nonce, valid
for ``CHALLENGE_TTL`` seconds and redeemable once. ``redeem`` checks the signature
against the server's own record of that challenge and the signer against the index
(``registry.lookup``), then issues a token: 32 random bytes (URL-safe base64) valid for
``ttl`` seconds. ``principal(token)`` answers who holds a token, re-checking the
registration on every use, so a member suspended or revoked on chain loses access as
soon as the index sees it, not when the token expires.

In memory on purpose: a restart signs everyone out (tokens are short-lived anyway) and
no token or nonce is ever written to disk. Tokens are stored under their SHA-256, so a
memory dump or a timing side channel of the dictionary does not give usable tokens.
Both maps are bounded: expired entries are pruned; a key has at most
``MAX_PENDING_PER_ADDRESS`` open challenges (a new one drops its oldest), and only
registered keys get one, so the table is bounded by the consortium's size; past
``MAX_PENDING_CHALLENGES`` new challenges are refused (429) rather than growing.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine

from auditor.auth import challenge as typed
from auditor.auth import registry
from auditor.auth.errors import AuthError, invalid, unauthorized
from auditor.auth.principal import Principal
from auditor.index.store import IndexStore
from ledger.ids import InvalidInput, as_address

CHALLENGE_TTL = 300
DEFAULT_TTL = 900
MAX_PENDING_CHALLENGES = 10_000
MAX_PENDING_PER_ADDRESS = 16
MAX_SESSIONS = 100_000
_SIGNATURE_BYTES = 65


@dataclass(frozen=True)
class _Pending:
    address: str
    data: dict[str, Any]
    expires_at: int


class SessionStore:
    """Sign-in challenges and bearer tokens of one auditor (one chain, one consortium)."""

    def __init__(
        self,
        engine_or_store: Engine | IndexStore,
        chain_id: int,
        consortium_address: str,
        audience: str,
        ttl: int = DEFAULT_TTL,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive seconds")
        if not audience:
            raise ValueError("audience must name this auditor (e.g. its base URL)")
        self._engine = (
            engine_or_store.engine if isinstance(engine_or_store, IndexStore) else engine_or_store
        )
        self.chain_id = int(chain_id)
        self.consortium_address = str(as_address(consortium_address, "consortium_address"))
        self.audience = audience
        self.ttl = int(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._challenges: dict[bytes, _Pending] = {}  # nonce -> pending challenge
        self._sessions: dict[bytes, Principal] = {}  # sha256(token) -> principal

    def _now(self) -> int:
        return int(self._clock())

    # --- challenge --------------------------------------------------------------------

    def challenge(self, address: str) -> dict[str, Any]:
        """The typed data ``address`` must sign (``eth_signTypedData_v4``), single use.

        Refused (401) unless the address is registered now, so nobody learns anything or
        fills memory by asking for challenges for keys that could never sign in.
        """
        checksum = _address(address)
        if self._member(checksum) is None:
            raise unauthorized(_not_registered(checksum), "address")
        now = self._now()
        nonce = secrets.token_bytes(32)
        data = typed.typed_data(
            chain_id=self.chain_id,
            consortium_address=self.consortium_address,
            address=checksum,
            nonce=nonce,
            issued_at=now,
            expires_at=now + CHALLENGE_TTL,
            audience=self.audience,
        )
        with self._lock:
            self._prune(now)
            mine = [n for n, p in self._challenges.items() if p.address == checksum]
            for stale in mine[: max(len(mine) - MAX_PENDING_PER_ADDRESS + 1, 0)]:
                del self._challenges[stale]  # oldest first (dicts keep insertion order)
            if len(self._challenges) >= MAX_PENDING_CHALLENGES:
                raise AuthError(429, "address", "too many sign-ins in progress; retry shortly")
            self._challenges[nonce] = _Pending(checksum, data, now + CHALLENGE_TTL)
        return data

    # --- redeem -----------------------------------------------------------------------

    def redeem(self, address: str, nonce_hex: str, signature_hex: str) -> tuple[str, Principal]:
        """A token for a signed challenge: (token, principal). The challenge is used up
        whatever the outcome, so a signature can be tried once only."""
        checksum = _address(address)
        nonce = _hex_bytes(nonce_hex, "nonce", 32)
        signature = _hex_bytes(signature_hex, "signature", _SIGNATURE_BYTES)
        now = self._now()
        with self._lock:
            pending = self._challenges.pop(nonce, None)
        if pending is None:
            raise unauthorized("unknown or already used challenge; ask for a new one", "nonce")
        if pending.address != checksum:
            raise unauthorized("the challenge was issued to another address", "address")
        if now > pending.expires_at:
            raise unauthorized("the challenge expired; ask for a new one", "nonce")
        signer = typed.recover(pending.data, signature)
        if signer != checksum:
            raise unauthorized(
                "the signature is not by this address over this challenge (check the "
                "chain id, consortium address and audience the wallet signed)",
                "signature",
            )
        member = self._member(checksum)
        if member is None:
            raise unauthorized(_not_registered(checksum), "address")
        principal = Principal(
            address=checksum,
            org_id=member.org_id,
            org_name=member.org_name,
            is_regulator=member.is_regulator,
            expires_at=now + self.ttl,
        )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._prune(now)
            if len(self._sessions) >= MAX_SESSIONS:
                raise AuthError(429, "address", "too many open sessions; retry shortly")
            self._sessions[_token_key(token)] = principal
        return token, principal

    # --- use --------------------------------------------------------------------------

    def principal(self, token: str) -> Principal | None:
        """Who holds ``token``, or None when it is unknown, expired, or its key is no
        longer registered (then the token is dropped)."""
        if not isinstance(token, str) or not token or len(token) > 256:
            return None
        key = _token_key(token)
        now = self._now()
        with self._lock:
            held = self._sessions.get(key)
            if held is not None and now > held.expires_at:
                del self._sessions[key]
                held = None
        if held is None:
            return None
        member = self._member(held.address)
        if member is None or member.org_id != held.org_id:
            with self._lock:
                self._sessions.pop(key, None)
            return None
        if member.is_regulator != held.is_regulator or member.org_name != held.org_name:
            held = replace(held, is_regulator=member.is_regulator, org_name=member.org_name)
        return held

    def revoke(self, token: str) -> None:
        """Sign out: the token stops working now."""
        with self._lock:
            self._sessions.pop(_token_key(token), None)

    # --- internals --------------------------------------------------------------------

    def _member(self, checksum: str) -> registry.Member | None:
        with self._engine.connect() as conn:
            return registry.lookup(conn, bytes.fromhex(checksum[2:]))

    def _prune(self, now: int) -> None:
        """Drop expired challenges and sessions (caller holds the lock)."""
        for nonce in [n for n, p in self._challenges.items() if now > p.expires_at]:
            del self._challenges[nonce]
        if len(self._sessions) > MAX_SESSIONS // 2:
            for key in [k for k, p in self._sessions.items() if now > p.expires_at]:
                del self._sessions[key]


def _token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _address(value: object) -> str:
    try:
        return str(as_address(value, "address"))
    except InvalidInput as exc:
        raise invalid("address", exc.problem) from None


def _hex_bytes(value: object, field: str, size: int) -> bytes:
    text = value if isinstance(value, str) else ""
    body = text[2:] if text[:2] in ("0x", "0X") else ""
    if len(body) != 2 * size:
        raise invalid(field, f"expected 0x followed by {2 * size} hex digits")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise invalid(field, f"expected 0x followed by {2 * size} hex digits") from None


def _not_registered(address: str) -> str:
    return (
        f"{address} is not registered: sign in with the admin key or an active node key "
        "of an active organisation (as indexed by this auditor)"
    )
