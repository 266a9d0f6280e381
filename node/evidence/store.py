"""The evidence store: per task an append-only, hash-chained transcript in SQL.

What a node records here is what it later anchors on chain (the RFC 9162 root of the
transcript) and what it serves to a regulator's auditor, so three properties matter
more than speed:

* **Gap-free chains under concurrency.** A task's protocol threads (one per peer) and
  possibly several worker processes append to the same transcript. Each append reads the
  last entry and writes the next one inside one transaction that holds the task's lock:
  a row lock (``SELECT ... FOR UPDATE`` on the task's row) on PostgreSQL, and an
  immediate (write-locking) transaction on SQLite. ``(task_id, seq)`` is the primary key
  as a backstop, so a locking bug would fail loudly instead of forking a chain.
* **Append-only.** No method updates or deletes; the ORM refuses to; and the database
  rejects UPDATE/DELETE (and TRUNCATE on PostgreSQL) of evidence rows with triggers.
* **Nothing half-written.** Every argument is validated before the database is touched
  and every write runs in one transaction, so an error leaves the store as it was.

SQLite is the default (``sqlite:///path/evidence.db``); PostgreSQL is reached with
``postgresql+psycopg://...`` (a bare ``postgresql://`` is taken to mean psycopg 3).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import ORMExecuteState, Session

from ledger import merkle
from ledger.ids import InvalidInput
from ledger.transcript import (
    ENTRY_KINDS,
    GENESIS_PREV,
    MESSAGE_KINDS,
    Entry,
    chain_intact,
    leaf_hashes,
    transcript_root,
)
from node.evidence.models import (
    ANCHOR_KINDS,
    APPEND_ONLY_TABLES,
    MAX_PEER_LENGTH,
    MAX_STEP_LENGTH,
    AnchorRow,
    AppendOnlyError,
    EntryRow,
    EvidenceBase,
    EvidenceTaskRow,
)
from node.evidence.upgrade import set_entry_kinds

__all__ = [
    "Anchor",
    "EvidenceCorrupted",
    "EvidenceStore",
    "StoreUnavailable",
    "open_engine",
    "require_bytes32",
    "require_int",
]

T = TypeVar("T")

# Execution option read by the SQLite "begin" hook: writers take the write lock at BEGIN,
# so two appenders can never both read "last seq = n" and then race to write n + 1.
_SQLITE_BEGIN = "provnet_sqlite_begin"
_SQLITE_BUSY_TIMEOUT_S = 30.0
# PostgreSQL: serialization failure, deadlock. Both mean "run the transaction again".
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
_MAX_ATTEMPTS = 8
# Taken (transaction-scoped) while creating tables, so that several processes opening a
# fresh database at once do not race each other's CREATE TABLE / CREATE TRIGGER.
_PG_SCHEMA_LOCK_KEY = 0x70726F766E6574  # "provnet"


class EvidenceCorrupted(RuntimeError):
    """Stored entries no longer form an intact hash chain (edited outside this store)."""


class StoreUnavailable(RuntimeError):
    """The database cannot be opened or reached."""


@dataclass(frozen=True)
class Anchor:
    """A transcript prefix of ``tree_size`` entries with ``root``, anchored in ``tx_hash``."""

    task_id: bytes
    kind: str
    tree_size: int
    root: bytes
    tx_hash: bytes
    recorded_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "taskId": "0x" + self.task_id.hex(),
            "kind": self.kind,
            "treeSize": self.tree_size,
            "root": "0x" + self.root.hex(),
            "txHash": "0x" + self.tx_hash.hex(),
            "recordedAt": self.recorded_at.isoformat(),
        }


# --- validation ----------------------------------------------------------------------


def require_bytes32(value: object, field: str) -> bytes:
    """Exactly 32 raw bytes, else `InvalidInput` (a ValueError) naming the field."""
    if not isinstance(value, bytes | bytearray):
        raise InvalidInput(field, f"expected 32 bytes, got {type(value).__name__}")
    if len(value) != 32:
        raise InvalidInput(field, f"expected 32 bytes, got {len(value)}")
    return bytes(value)


def require_int(value: object, field: str, minimum: int = 0) -> int:
    """An int (not a bool) of at least ``minimum``, else `InvalidInput`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(field, f"expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise InvalidInput(field, f"must be at least {minimum}, got {value}")
    return value


def _require_text(value: object, field: str, max_length: int, *, empty_ok: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected a string, got {type(value).__name__}")
    if not value and not empty_ok:
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidInput(field, f"longer than {max_length} characters")
    # Printable only: no NUL (PostgreSQL text cannot hold it), no control characters
    # that would make two different steps look alike in a regulator's report, and no
    # lone surrogates (they have no canonical JSON form, so the entry could not be hashed).
    if not value.isprintable():
        raise InvalidInput(field, f"must be printable text, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, f"not valid Unicode text: {value!r}") from None
    return value


def _require_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(field, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


# --- engine --------------------------------------------------------------------------


def open_engine(url: str) -> Engine:
    """An engine for a SQLite file or a PostgreSQL database, configured for this store.

    Shared by the evidence store and the task state store so both see the same
    transaction semantics: on SQLite, SQLAlchemy (not the sqlite3 module) emits BEGIN,
    so a transaction really starts at BEGIN, and writers can ask for BEGIN IMMEDIATE.
    """
    if not isinstance(url, str) or not url:
        raise InvalidInput("url", "expected a database URL such as sqlite:///path/evidence.db")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput("url", f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgres_engine(parsed)
    raise InvalidInput("url", f"unsupported database {backend!r}: use sqlite or postgresql")


def _sqlite_engine(url: URL) -> Engine:
    if url.get_driver_name() != "pysqlite":
        raise InvalidInput("url", f"unsupported SQLite driver {url.get_driver_name()!r}")
    if url.database in (None, "", ":memory:") or "mode=memory" in str(url):
        # Evidence must outlive the process, and an in-memory database is one
        # connection that threads cannot share safely.
        raise InvalidInput("url", "in-memory SQLite is not supported; use sqlite:///path/file.db")
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see "begin" below); the sqlite3 module's own
        # implicit BEGIN is deferred and skips SELECTs, which breaks read-then-write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
            cursor.execute("PRAGMA synchronous = FULL")  # evidence survives power loss
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: URL) -> Engine:
    if url.drivername == "postgresql":  # SQLAlchemy would pick psycopg2, not installed
        url = url.set(drivername="postgresql+psycopg")
    if url.get_driver_name() != "psycopg":
        raise InvalidInput(
            "url", f"unsupported PostgreSQL driver {url.get_driver_name()!r}: use psycopg"
        )
    return create_engine(url, pool_pre_ping=True)


def _is_retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


class _GuardedSession(Session):
    """A session that refuses bulk UPDATE/DELETE statements against evidence tables."""


@event.listens_for(_GuardedSession, "do_orm_execute")
def _reject_bulk_mutation(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    table = getattr(mapper, "local_table", None) if mapper is not None else None
    name = getattr(table, "name", None)
    if name in APPEND_ONLY_TABLES:
        raise AppendOnlyError(f"{name} is append-only")


class Database:
    """An engine plus the transaction discipline both node stores use."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        self.dialect = self.engine.dialect.name
        self._write_engine = (
            self.engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            if self.dialect == "sqlite"
            else self.engine
        )

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.

        ``write=True`` takes SQLite's write lock at BEGIN (PostgreSQL writers lock rows
        explicitly instead).
        """
        bind = self._write_engine if write else self.engine
        with _GuardedSession(bind, expire_on_commit=False) as session, session.begin():
            yield session

    def run(self, work: Callable[[Session], T], write: bool = False) -> T:
        """Run ``work`` in one transaction, again from scratch on a serialisation
        failure or deadlock (PostgreSQL), with jittered backoff."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with self.session(write) as session:
                    return work(session)
            except DBAPIError as exc:
                if self.dialect == "postgresql" and _is_retryable(exc) and attempt < _MAX_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.005 * 2**attempt))
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def create_schema(
        self,
        metadata: MetaData,
        append_only: Sequence[str] = (),
        upgrades: Sequence[Callable[[Connection, str], object]] = (),
    ) -> None:
        """Create missing tables (and append-only triggers), then apply in-place
        upgrades of tables an earlier version created, in one locked transaction."""
        try:
            with self._write_engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK_KEY}
                    )
                metadata.create_all(conn, checkfirst=True)
                for statement in _append_only_ddl(self.dialect, append_only):
                    conn.execute(text(statement))
                for upgrade in upgrades:
                    upgrade(conn, self.dialect)
        except OperationalError as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            raise StoreUnavailable(f"cannot open database {where}: {exc.orig}") from None

    def insert_ignore(self, session: Session, model: type[Any], **values: Any) -> int:
        """INSERT ... ON CONFLICT DO NOTHING; returns the number of rows inserted."""
        # Counted with RETURNING (a skipped row returns nothing) rather than rowcount,
        # which drivers do not report reliably for ON CONFLICT; the count is how callers
        # learn who won a race.
        table = model.__table__
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        stmt = insert(table).values(**values).on_conflict_do_nothing()
        return len(session.connection().execute(stmt.returning(*table.primary_key)).all())

    def close(self) -> None:
        self.engine.dispose()


def _append_only_ddl(dialect: str, tables: Sequence[str]) -> list[str]:
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} rejected'); END"
            for table in tables
            for op in ("UPDATE", "DELETE")
        ]
    statements = [
        "CREATE OR REPLACE FUNCTION provnet_reject_mutation() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP "
        "USING ERRCODE = 'restrict_violation'; "
        "END $$"
    ]
    for table in tables:
        statements.append(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION provnet_reject_mutation()"
        )
        statements.append(
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION provnet_reject_mutation()"
        )
    return statements


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- the store -----------------------------------------------------------------------


class EvidenceStore:
    """Per-task append-only transcripts, their Merkle roots and proofs, and anchors.

    Entries are exactly `ledger.transcript.Entry`, so `root(task)` equals what
    `ledger.transcript.transcript_root` gives over `entries(task)` and what the auditor
    recomputes from the transcript the node serves.
    """

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        try:
            self.db.create_schema(
                EvidenceBase.metadata,
                APPEND_ONLY_TABLES,
                upgrades=[lambda conn, dialect: set_entry_kinds(conn, dialect, ENTRY_KINDS)],
            )
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        """Release pooled connections; the store must not be used afterwards."""
        self.db.close()

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A transaction on the evidence database (used by `node.evidence.access`)."""
        with self.db.session(write) as session:
            yield session

    # --- writing ---------------------------------------------------------------------

    def append(self, task_id: bytes, kind: str, step: str, digest: bytes, peer: str = "") -> Entry:
        """Append one entry to the task's transcript and return it (with seq and prev).

        ``peer`` names the other party of a ``sent``/``received``/``received-late`` entry
        and must be empty for ``input``/``output``, so a transcript cannot claim a message
        without a peer.
        """
        task_id = require_bytes32(task_id, "task_id")
        kind = _require_choice(kind, "kind", ENTRY_KINDS)
        step = _require_text(step, "step", MAX_STEP_LENGTH, empty_ok=False)
        digest = require_bytes32(digest, "digest")
        peer = _require_text(peer, "peer", MAX_PEER_LENGTH, empty_ok=True)
        if kind in MESSAGE_KINDS and not peer:
            raise InvalidInput("peer", f"a {kind!r} entry must name its peer")
        if kind in ("input", "output") and peer:
            raise InvalidInput("peer", f"an {kind!r} entry has no peer, got {peer!r}")

        def work(session: Session) -> Entry:
            self._lock_task(session, task_id, create=True)
            last = session.scalars(
                select(EntryRow)
                .where(EntryRow.task_id == task_id)
                .order_by(EntryRow.seq.desc())
                .limit(1)
            ).first()
            if last is None:
                seq, prev = 0, GENESIS_PREV
            else:
                seq, prev = int(last.seq) + 1, last.to_entry().hash()
            entry = Entry(seq, kind, step, peer, digest, prev)
            session.add(
                EntryRow(
                    task_id=task_id,
                    seq=seq,
                    kind=kind,
                    step=step,
                    peer=peer,
                    digest=digest,
                    prev=prev,
                    recorded_at=utc_now(),
                )
            )
            return entry

        return self.db.run(work, write=True)

    def record_anchor(
        self, task_id: bytes, kind: str, tree_size: int, root: bytes, tx_hash: bytes
    ) -> Anchor:
        """Record that the first ``tree_size`` entries, with ``root``, were anchored in
        transaction ``tx_hash``.

        The root is checked against the stored transcript: recording an anchor of a
        root this store cannot reproduce would leave the node unable to serve evidence
        that matches its own on-chain claim. Recording the same anchor again returns the
        existing record (a restarted task runner may repeat itself); recording a
        different anchor under an already recorded tx hash is refused.
        """
        task_id = require_bytes32(task_id, "task_id")
        kind = _require_choice(kind, "kind", ANCHOR_KINDS)
        tree_size = require_int(tree_size, "tree_size", minimum=1)
        root = require_bytes32(root, "root")
        tx_hash = require_bytes32(tx_hash, "tx_hash")

        def work(session: Session) -> Anchor:
            self._lock_task(session, task_id, create=False)
            existing = session.scalars(
                select(AnchorRow).where(AnchorRow.task_id == task_id, AnchorRow.tx_hash == tx_hash)
            ).first()
            if existing is not None:
                anchor = _anchor(existing)
                if (anchor.kind, anchor.tree_size, anchor.root) != (kind, tree_size, root):
                    raise InvalidInput(
                        "tx_hash", f"{_hex(tx_hash)} is already recorded for a different anchor"
                    )
                return anchor
            entries = self._load(session, task_id)
            if tree_size > len(entries):
                raise InvalidInput(
                    "tree_size", f"{tree_size} exceeds the transcript's {len(entries)} entries"
                )
            if transcript_root(entries[:tree_size]) != root:
                raise InvalidInput(
                    "root", f"does not match the root of the transcript's first {tree_size} entries"
                )
            row = AnchorRow(
                task_id=task_id,
                kind=kind,
                tree_size=tree_size,
                root=root,
                tx_hash=tx_hash,
                recorded_at=utc_now(),
            )
            session.add(row)
            session.flush()
            return _anchor(row)

        return self.db.run(work, write=True)

    def _lock_task(self, session: Session, task_id: bytes, *, create: bool) -> None:
        """Hold the task's write lock for the rest of the transaction.

        SQLite: the transaction already holds the database write lock (BEGIN
        IMMEDIATE). PostgreSQL: lock the task's row; a concurrent first appender blocks
        on the primary key in the INSERT until this transaction ends.
        """
        if create:
            self.db.insert_ignore(session, EvidenceTaskRow, task_id=task_id, created_at=utc_now())
        query = select(EvidenceTaskRow.task_id).where(EvidenceTaskRow.task_id == task_id)
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        if session.execute(query).first() is None:
            raise InvalidInput("task_id", f"no evidence recorded for task {_hex(task_id)}")

    # --- reading ---------------------------------------------------------------------

    def entries(self, task_id: bytes) -> list[Entry]:
        """The task's transcript in order; empty for a task without evidence."""
        task_id = require_bytes32(task_id, "task_id")
        with self.db.session() as session:
            return self._rows(session, task_id)

    def size(self, task_id: bytes) -> int:
        """Number of entries of the task's transcript."""
        task_id = require_bytes32(task_id, "task_id")
        with self.db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(EntryRow).where(EntryRow.task_id == task_id)
            )
            return int(count or 0)

    def root(self, task_id: bytes, tree_size: int | None = None) -> bytes:
        """RFC 9162 root of the transcript (or of its first ``tree_size`` entries)."""
        leaves = self._leaves(task_id)
        size = len(leaves) if tree_size is None else self._size_arg(tree_size, "tree_size", leaves)
        return merkle.root(leaves[:size])

    def inclusion_proof(
        self, task_id: bytes, seq: int, tree_size: int | None = None
    ) -> list[bytes]:
        """Proof that entry ``seq`` is in the tree of the whole transcript, or of its
        first ``tree_size`` entries (to prove against an earlier anchored root)."""
        leaves = self._leaves(task_id)
        size = len(leaves) if tree_size is None else self._size_arg(tree_size, "tree_size", leaves)
        seq = require_int(seq, "seq")
        if seq >= size:
            raise InvalidInput("seq", f"{seq} out of range for a tree of {size} entries")
        return merkle.inclusion_proof(leaves[:size], seq)

    def consistency_proof(
        self, task_id: bytes, old_size: int, new_size: int | None = None
    ) -> list[bytes]:
        """Proof that the first ``old_size`` entries are a prefix of the first
        ``new_size`` (default: all) entries: what an anchored checkpoint needs."""
        leaves = self._leaves(task_id)
        size = len(leaves) if new_size is None else self._size_arg(new_size, "new_size", leaves)
        old_size = require_int(old_size, "old_size", minimum=1)
        if old_size > size:
            raise InvalidInput("old_size", f"{old_size} exceeds the tree size {size}")
        return merkle.consistency_proof(leaves[:size], old_size)

    def anchors(self, task_id: bytes) -> list[Anchor]:
        """The task's recorded anchors, oldest first."""
        task_id = require_bytes32(task_id, "task_id")
        with self.db.session() as session:
            rows = session.scalars(
                select(AnchorRow).where(AnchorRow.task_id == task_id).order_by(AnchorRow.id)
            ).all()
            return [_anchor(r) for r in rows]

    def tasks(self) -> list[bytes]:
        """Every task id with evidence, in the order their first entry was written."""
        with self.db.session() as session:
            rows = session.scalars(
                select(EvidenceTaskRow.task_id).order_by(
                    EvidenceTaskRow.created_at, EvidenceTaskRow.task_id
                )
            ).all()
            return [bytes(r) for r in rows]

    def _rows(self, session: Session, task_id: bytes) -> list[Entry]:
        rows = session.scalars(
            select(EntryRow).where(EntryRow.task_id == task_id).order_by(EntryRow.seq)
        ).all()
        return [r.to_entry() for r in rows]

    def _load(self, session: Session, task_id: bytes) -> list[Entry]:
        """The entries, refusing to build roots or proofs over a broken chain."""
        entries = self._rows(session, task_id)
        if not chain_intact(entries):
            raise EvidenceCorrupted(f"transcript of task {_hex(task_id)} is not an intact chain")
        return entries

    def _leaves(self, task_id: bytes) -> list[bytes]:
        task_id = require_bytes32(task_id, "task_id")
        with self.db.session() as session:
            return leaf_hashes(self._load(session, task_id))

    @staticmethod
    def _size_arg(value: object, field: str, leaves: Sequence[bytes]) -> int:
        size = require_int(value, field)
        if size > len(leaves):
            raise InvalidInput(field, f"{size} exceeds the transcript's {len(leaves)} entries")
        return size


def _anchor(row: AnchorRow) -> Anchor:
    return Anchor(
        task_id=bytes(row.task_id),
        kind=row.kind,
        tree_size=int(row.tree_size),
        root=bytes(row.root),
        tx_hash=bytes(row.tx_hash),
        recorded_at=row.recorded_at,
    )
