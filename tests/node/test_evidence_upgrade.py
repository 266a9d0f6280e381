"""An evidence database created before `received-late` existed is upgraded in place.

Written the way an operator meets it: a node upgraded over its old database must record
late deliveries; before the upgrade ran, the database itself refused them.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from ledger.transcript import ENTRY_KINDS, chain_intact
from node.evidence.store import EvidenceStore
from node.evidence.upgrade import set_entry_kinds

TASK = bytes(range(32))
OLD_KINDS = ("input", "sent", "received", "output")


def _narrow_to_old_kinds(store: EvidenceStore) -> None:
    with store.db._write_engine.begin() as conn:
        assert set_entry_kinds(conn, store.db.dialect, OLD_KINDS)


def test_an_old_database_refuses_late_entries_until_the_store_reopens(db_url: str) -> None:
    with EvidenceStore(db_url) as old:
        old.append(TASK, "input", "input", b"\x01" * 32)
        old.append(TASK, "sent", "keys", b"\x02" * 32, "0xpeer")
        root = old.root(TASK)
        _narrow_to_old_kinds(old)
    with EvidenceStore(db_url) as upgraded:  # the upgrade runs at open
        assert upgraded.root(TASK) == root  # stored entries untouched
        upgraded.append(TASK, "received-late", "unmask", b"\x03" * 32, "0xpeer")
        entries = upgraded.entries(TASK)
        assert [e.kind for e in entries] == ["input", "sent", "received-late"]
        assert chain_intact(entries)


def test_the_narrowed_database_really_refused_them(db_url: str) -> None:
    """The test above could not fail if narrowing did nothing: check it bites."""
    with EvidenceStore(db_url) as store:
        _narrow_to_old_kinds(store)
        store.db.engine.dispose()  # pooled connections reload the rewritten schema
        with pytest.raises(IntegrityError):
            store.append(TASK, "received-late", "unmask", b"\x03" * 32, "0xpeer")


def test_upgrading_twice_changes_nothing(db_url: str) -> None:
    with EvidenceStore(db_url) as store, store.db._write_engine.begin() as conn:
        assert not set_entry_kinds(conn, store.db.dialect, ENTRY_KINDS)
