"""Validation of the identifiers that cross the chain boundary: bytes32 ids and addresses.

Every entry point (CLI, REST, manifest, config) funnels user-supplied ids through these
functions, so a malformed value is rejected before any transaction is built, with a
one-line message naming the field it came from.
"""

from __future__ import annotations

import re

from eth_abi.abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak

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


# Domain separators of the ids the contracts derive on chain (TaskRegistry.taskIdFor,
# DatasetRegistry.datasetIdFor, AnchorLog.logIdFor): the creator is part of the id, so
# one member can never occupy another member's id.
TASK_ID_DOMAIN = "provnet:task:v1"
DATASET_ID_DOMAIN = "provnet:dataset:v1"
LOG_ID_DOMAIN = "provnet:log:v1"


def task_id_for(creator_org: bytes, request_id: bytes) -> bytes:
    """`TaskRegistry.taskIdFor`: keccak256(abi.encode("provnet:task:v1", org, request))."""
    return keccak(
        abi_encode(
            ["string", "bytes32", "bytes32"],
            [
                TASK_ID_DOMAIN,
                as_bytes32(creator_org, "creator_org"),
                as_bytes32(request_id, "request_id"),
            ],
        )
    )


def dataset_id_for(owner_org: bytes, name: bytes) -> bytes:
    """`DatasetRegistry.datasetIdFor`: keccak256(abi.encode("provnet:dataset:v1", org, name))."""
    return keccak(
        abi_encode(
            ["string", "bytes32", "bytes32"],
            [DATASET_ID_DOMAIN, as_bytes32(owner_org, "owner_org"), as_bytes32(name, "name")],
        )
    )


def log_id_for(owner: str, name: bytes) -> bytes:
    """`AnchorLog.logIdFor`: keccak256(abi.encode("provnet:log:v1", owner, name))."""
    return keccak(
        abi_encode(
            ["string", "address", "bytes32"],
            [LOG_ID_DOMAIN, as_address(owner, "owner"), as_bytes32(name, "name")],
        )
    )


def hex32(value: bytes) -> str:
    """The canonical text form of a bytes32 id."""
    return "0x" + value.hex()
