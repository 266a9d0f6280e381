"""SQLAlchemy tables of the evidence store: transcripts, anchors and used request nonces.

The tables mirror `ledger.transcript.Entry` column for column so that what the node
anchors on chain (the RFC 9162 root over `Entry.encoded()`) can be recomputed from the
rows alone, by the node itself or by an auditor reading a database dump.

Evidence rows are append-only. Three layers keep them so: the store has no code path
that updates or deletes them; the ORM refuses to flush an update or delete of these
classes (`reject_mutation` listeners below); and the database itself rejects UPDATE and
DELETE with triggers (see `store.py`), which also stops a careless `psql` session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ledger.transcript import ENTRY_KINDS, Entry

__all__ = [
    "ANCHOR_KINDS",
    "APPEND_ONLY_TABLES",
    "AccessNonceRow",
    "AnchorRow",
    "AppendOnlyError",
    "EntryRow",
    "EvidenceBase",
    "EvidenceTaskRow",
    "UTCDateTime",
]

ANCHOR_KINDS = ("result", "checkpoint")
MAX_STEP_LENGTH = 200
MAX_PEER_LENGTH = 200


class AppendOnlyError(RuntimeError):
    """Raised when code tries to update or delete an evidence row."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no timezone type and hands back naive datetimes; PostgreSQL hands back
    the session's time zone. Normalising both to aware UTC means a record read from
    either backend compares and serialises the same way.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - driver contract
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class EvidenceBase(DeclarativeBase):
    """Metadata of the evidence tables; kept apart from other node tables on purpose,
    so that creating the evidence schema never creates (or needs) anything else."""


class EvidenceTaskRow(EvidenceBase):
    """One row per task that has evidence: the row that appenders lock.

    A row lock needs a row to exist before the first entry does; locking "the last
    entry" would leave two first appenders with nothing to lock and a forked chain.
    """

    __tablename__ = "evidence_tasks"

    task_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("length(task_id) = 32", name="evidence_tasks_task_id_len"),)


class EntryRow(EvidenceBase):
    """One transcript entry, exactly the fields of `ledger.transcript.Entry`."""

    __tablename__ = "evidence_entries"

    task_id: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("evidence_tasks.task_id"), primary_key=True
    )
    # (task_id, seq) is the primary key: even a locking bug could not fork a chain,
    # because a second entry with the same seq cannot be stored.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[str] = mapped_column(String(MAX_STEP_LENGTH))
    peer: Mapped[str] = mapped_column(String(MAX_PEER_LENGTH))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    prev: Mapped[bytes] = mapped_column(LargeBinary(32))
    # Not part of the hashed entry: when this node wrote it, for local forensics.
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("seq >= 0", name="evidence_entries_seq_nonneg"),
        CheckConstraint(_in("kind", ENTRY_KINDS), name="evidence_entries_kind"),
        CheckConstraint("length(digest) = 32", name="evidence_entries_digest_len"),
        CheckConstraint("length(prev) = 32", name="evidence_entries_prev_len"),
    )

    def to_entry(self) -> Entry:
        return Entry(
            seq=int(self.seq),
            kind=self.kind,
            step=self.step,
            peer=self.peer,
            digest=bytes(self.digest),
            prev=bytes(self.prev),
        )


class AnchorRow(EvidenceBase):
    """An on-chain anchor of a transcript prefix: which root, at which size, in which tx."""

    __tablename__ = "evidence_anchors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("evidence_tasks.task_id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    tx_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # One transaction anchors one root of one task; recording it twice is a no-op.
        UniqueConstraint("task_id", "tx_hash", name="evidence_anchors_task_tx"),
        CheckConstraint(_in("kind", ANCHOR_KINDS), name="evidence_anchors_kind"),
        CheckConstraint("tree_size >= 1", name="evidence_anchors_tree_size_pos"),
        CheckConstraint("length(root) = 32", name="evidence_anchors_root_len"),
        CheckConstraint("length(tx_hash) = 32", name="evidence_anchors_tx_hash_len"),
    )


class AccessNonceRow(EvidenceBase):
    """A nonce consumed by a signed evidence request; doubles as the access log.

    The primary key (requester, nonce) is the replay guard: a second insert of the same
    pair fails in the database even when two servers check it at the same instant.
    """

    __tablename__ = "evidence_access_nonces"

    requester: Mapped[str] = mapped_column(String(42), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)  # uint256, big-endian
    task_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())


APPEND_ONLY_TABLES = (
    EvidenceTaskRow.__tablename__,
    EntryRow.__tablename__,
    AnchorRow.__tablename__,
)


def _reject(mapper: Any, connection: Any, target: Any) -> None:
    raise AppendOnlyError(f"{type(target).__tablename__} is append-only")


def guard_append_only(*models: type[Any]) -> tuple[str, ...]:
    """Refuse ORM updates and deletes of ``models``' rows (the database triggers that
    ``Database.create_schema`` installs refuse them in SQL too); returns their table
    names, as ``create_schema`` takes them."""
    for model in models:
        event.listen(model, "before_update", _reject)
        event.listen(model, "before_delete", _reject)
    return tuple(model.__tablename__ for model in models)


guard_append_only(EvidenceTaskRow, EntryRow, AnchorRow)
