"""Organisation roles, a bitmask mirrored from `Consortium.sol`."""

from __future__ import annotations

from enum import IntFlag


class Role(IntFlag):
    PROVIDER = 1  # offers datasets
    CONSUMER = 2  # starts jobs
    COMPUTE = 4  # runs jobs for others (e.g. a TEE host)
    REGULATOR = 8  # reads evidence, never data


ALL_ROLES = int(Role.PROVIDER | Role.CONSUMER | Role.COMPUTE | Role.REGULATOR)


def parse_roles(text: str) -> int:
    """`provider,consumer` -> mask; unknown names are rejected by name."""
    mask = 0
    for part in filter(None, (p.strip().upper() for p in text.split(","))):
        if part not in Role.__members__:
            known = ", ".join(r.lower() for r in Role.__members__)
            raise ValueError(f"roles: unknown role {part.lower()!r} (known: {known})")
        mask |= Role[part]
    if not mask:
        raise ValueError("roles: at least one role is required")
    return int(mask)  # a plain int: web3's ABI encoder cannot rebuild an IntFlag
