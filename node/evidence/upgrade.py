"""In-place upgrades of evidence databases created by earlier versions of the node.

`create_all` adds missing tables but never changes an existing one, so a constraint
that a newer version loosens stays tight in a database created before: a node upgraded
in place would then fail to record what the new code writes. Today that is one case:
the CHECK on transcript entry kinds, which gained `received-late` (messages delivered
for a task but never read by its protocol). Each upgrade only ever *widens* what the
database accepts, leaves every stored row and hash untouched, and is a no-op on a
database that already has it, so running it at every start is safe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import Connection, text

ENTRIES_TABLE = "evidence_entries"
KIND_CHECK = "evidence_entries_kind"


def kind_check_sql(kinds: Sequence[str]) -> str:
    """The CHECK expression the model declares for these kinds (see `models._in`)."""
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def set_entry_kinds(conn: Connection, dialect: str, kinds: Sequence[str]) -> bool:
    """Make the entry-kind CHECK accept exactly ``kinds``; False if it already does.

    PostgreSQL replaces the constraint (validated against the stored rows). SQLite cannot
    alter a constraint, so its schema text is rewritten in place, the procedure SQLite
    documents for changes that do not touch stored content (section "Making Other Kinds
    Of Table Schema Changes" of its ALTER TABLE page), with the schema version bumped so
    every connection reloads it, and an integrity check afterwards.
    """
    wanted = kind_check_sql(kinds)
    if dialect == "postgresql":
        current = conn.execute(
            text(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "WHERE c.conname = :name AND c.conrelid = to_regclass(:table)"
            ),
            {"name": KIND_CHECK, "table": ENTRIES_TABLE},
        ).scalar()
        if current is not None and set(re.findall(r"'([^']*)'", current)) == set(kinds):
            return False
        conn.execute(
            text(
                f"ALTER TABLE {ENTRIES_TABLE} DROP CONSTRAINT IF EXISTS {KIND_CHECK}, "
                f"ADD CONSTRAINT {KIND_CHECK} CHECK ({wanted})"
            )
        )
        return True
    if dialect != "sqlite":
        raise ValueError(f"unsupported database dialect {dialect!r}")
    sql = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :table"),
        {"table": ENTRIES_TABLE},
    ).scalar()
    if sql is None:
        return False
    start, end = _check_span(str(sql))
    if str(sql)[start:end] == wanted:
        return False
    rewritten = str(sql)[:start] + wanted + str(sql)[end:]
    version = int(conn.exec_driver_sql("PRAGMA schema_version").scalar() or 0)
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.execute(
            text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :table"),
            {"sql": rewritten, "table": ENTRIES_TABLE},
        )
        conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")
    verdict = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
    if verdict != "ok":
        raise RuntimeError(f"evidence database failed its integrity check: {verdict}")
    return True


def _check_span(table_sql: str) -> tuple[int, int]:
    """Where the kind CHECK's expression sits in a CREATE TABLE statement."""
    marker = f"CONSTRAINT {KIND_CHECK} CHECK ("
    at = table_sql.find(marker)
    if at < 0:
        raise RuntimeError(f"{ENTRIES_TABLE} has no {KIND_CHECK} constraint to upgrade")
    start = at + len(marker)
    depth = 1
    for i in range(start, len(table_sql)):
        if table_sql[i] == "(":
            depth += 1
        elif table_sql[i] == ")":
            depth -= 1
            if depth == 0:
                return start, i
    raise RuntimeError(f"unbalanced {KIND_CHECK} constraint in {ENTRIES_TABLE}")
