"""Names instead of ids: how operators refer to datasets, organisations and tasks.

On chain everything is a 32-byte id derived from a name (`ledger.ids`); asking an
operator to compute ``keccak(abi.encode(...))`` by hand is how the wrong id ends up in a
grant. Every reference therefore accepts either form: ``0x`` + 64 hex digits is an id,
anything else is a name, turned into the id exactly as the registering side derived it.
An id takes precedence, so a name that happens to look like an id cannot shadow one.
"""

from __future__ import annotations

import re

from ledger.clients import Clients
from ledger.directory import OrgEntry, organisations, resolve_org
from ledger.ids import InvalidInput, as_bytes32, dataset_id_for, hex32, name_id, task_id_for

_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


def is_id(reference: object) -> bool:
    """Whether a reference is an id (``0x`` + 64 hex digits, or 32 raw bytes), not a name."""
    if isinstance(reference, bytes | bytearray):
        return len(reference) == 32
    return isinstance(reference, str) and bool(_HEX32.match(reference.strip()))


def _text(reference: object, field: str) -> str:
    if not isinstance(reference, str) or not reference.strip():
        raise InvalidInput(
            field, f"expected an id (0x + 64 hex digits) or a name, got {reference!r}"
        )
    return reference.strip()


def dataset_id_of(owner_org: bytes, reference: object, field: str) -> bytes:
    """A dataset id, or the id of ``owner_org``'s dataset of that name (not checked on chain)."""
    if isinstance(reference, bytes | bytearray):
        return as_bytes32(reference, field)
    text = _text(reference, field)
    if is_id(text):
        return as_bytes32(text, field)
    return dataset_id_for(owner_org, name_id("dataset", text))


def registered_dataset_id(
    clients: Clients, owner_org: bytes, reference: object, field: str
) -> bytes:
    """`dataset_id_of`, checked to be a dataset registered on chain."""
    dataset_id = dataset_id_of(owner_org, reference, field)
    if clients.datasets.latest_version(dataset_id) == 0:
        what = reference if is_id(reference) else f"{reference!r} (id {hex32(dataset_id)})"
        raise InvalidInput(field, f"no dataset {what} is registered on chain")
    return dataset_id


def task_id_of(creator_org: bytes, reference: object, field: str = "taskId") -> bytes:
    """A task id, or the id of ``creator_org``'s task created with that request id."""
    if isinstance(reference, bytes | bytearray):
        return as_bytes32(reference, field)
    text = _text(reference, field)
    if is_id(text):
        return as_bytes32(text, field)
    return task_id_for(creator_org, name_id("task", text))


def org_of(clients: Clients, reference: object, field: str, first_block: int = 0) -> OrgEntry:
    """An organisation by id or registered name (``ledger.directory``)."""
    text = _text(reference, field)
    return resolve_org(organisations(clients.consortium, first_block), text, field)
