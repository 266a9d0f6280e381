"""Who an authenticated request comes from.

A ``Principal`` is only ever built by ``auditor.auth.sessions.SessionStore`` from a
verified signature and the index tables; nothing a client sends (an org id, a role) is
ever copied into one. Routes decide what to show from ``org_id`` and ``is_regulator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Principal:
    """A signed-in member: its key, its organisation, and whether that is a regulator."""

    address: str  # EIP-55 checksum address of the key that signed the challenge
    org_id: bytes  # 32 bytes
    org_name: str
    is_regulator: bool
    expires_at: int  # Unix seconds: the token stops working after this instant

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers with (ids as 0x lower-case hex)."""
        return {
            "address": self.address,
            "org": "0x" + self.org_id.hex(),
            "orgName": self.org_name,
            "isRegulator": self.is_regulator,
            "expiresAt": self.expires_at,
        }
