"""Validation of the identifiers that cross the chain boundary: bytes32 ids and addresses.

Every entry point (CLI, REST, manifest, config) funnels user-supplied ids through these
functions, so a malformed value is rejected before any transaction is built, with a
one-line message naming the field it came from.
"""

from __future__ import annotations

import re

from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address

from ledger.canonical import digest

_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class InvalidInput(ValueError):
    """User input that cannot be used; the message names the field and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def as_bytes32(value: object, field: str) -> bytes:
    """A 32-byte id from raw bytes or a 0x-prefixed 64-digit hex string."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise InvalidInput(field, f"expected 32 bytes, got {len(value)}")
        return bytes(value)
    if isinstance(value, str) and _HEX32.match(value):
        return bytes.fromhex(value[2:])
    raise InvalidInput(field, f"expected 0x followed by 64 hex digits, got {value!r}")


def as_address(value: object, field: str) -> ChecksumAddress:
    """An address; mixed-case input must carry a valid EIP-55 checksum."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise InvalidInput(field, f"expected 0x followed by 40 hex digits, got {value!r}")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise InvalidInput(field, f"bad EIP-55 checksum in {value!r}")
    return to_checksum_address(value)


def name_id(kind: str, name: str) -> bytes:
    """A stable bytes32 id derived from a human name (org, dataset, log), domain-separated."""
    if not name or not name.isprintable():
        raise InvalidInput(f"{kind} name", f"must be non-empty printable text, got {name!r}")
    return digest(f"{kind}-id", name.encode())


def hex32(value: bytes) -> str:
    """The canonical text form of a bytes32 id."""
    return "0x" + value.hex()
