"""The index database: migrations, the cursor, atomic pages, rollbacks and status.

One writer (the follower) and any number of readers (the API). Every change the
follower makes is one transaction that also moves the cursor, so the database is always
"everything up to block N, exactly": a crash mid-page leaves the previous page's state,
and a page applied twice is a no-op the second time (the cursor says it is there, and
``events`` is unique on ``(block_hash, log_index)`` as a backstop).

SQLite is the default (``sqlite:///path/index.db``); PostgreSQL is reached with
``postgresql+psycopg://...`` (a bare ``postgresql://`` means psycopg 3). The schema is
created and upgraded with Alembic from the migrations shipped in this package, at open.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from auditor.index import schema
from ledger.ids import InvalidInput

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SQLITE_BUSY_TIMEOUT_S = 60.0
_PG_MIGRATION_LOCK = 0x70726F766E6574 + 13  # "provnet" + issue: one migrator at a time


class IndexMismatch(InvalidInput):
    """The database was indexed from another chain or deployment than the one given."""


class CursorMoved(RuntimeError):
    """The stored cursor is not where the writer expected: a second indexer is writing,
    or the chain changed under the page. The caller re-reads the state and retries."""


@dataclass(frozen=True)
class IndexState:
    chain_id: int
    deployment_digest: bytes
    first_block: int
    cursor: int  # every block <= cursor is indexed; first_block - 1 when none
    cursor_hash: bytes | None
    head_seen: int | None
    head_seen_at: float | None
    confirmations: int | None
    reorgs_seen: int
    updated_at: float


@dataclass(frozen=True)
class IndexStatus:
    """What every API answer reports: up to which block it is complete, and how far behind."""

    complete_up_to: int
    complete_up_to_hash: str | None
    head_seen: int | None
    lag_blocks: int | None
    confirmations: int | None
    reorgs_seen: int
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "completeUpToBlock": self.complete_up_to,
            "completeUpToHash": self.complete_up_to_hash,
            "headSeen": self.head_seen,
            "lagBlocks": self.lag_blocks,
            "confirmations": self.confirmations,
            "reorgsSeen": self.reorgs_seen,
            "updatedAt": self.updated_at,
        }


def open_engine(url: str) -> Engine:
    """An engine for a SQLite file or a PostgreSQL database; a clear error otherwise."""
    if not isinstance(url, str) or not url:
        raise InvalidInput("database", "expected a database URL such as sqlite:///index.db")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput("database", f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() != "psycopg":
            raise InvalidInput(
                "database", f"unsupported PostgreSQL driver {parsed.get_driver_name()!r}"
            )
        return create_engine(parsed, pool_pre_ping=True)
    raise InvalidInput("database", f"unsupported database {backend!r}: use sqlite or postgresql")


def _sqlite_engine(url: URL) -> Engine:
    if url.get_driver_name() != "pysqlite":
        raise InvalidInput("database", f"unsupported SQLite driver {url.get_driver_name()!r}")
    if url.database in (None, "", ":memory:") or "mode=memory" in str(url):
        raise InvalidInput("database", "in-memory SQLite is not supported; use sqlite:///file.db")
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, emits BEGIN (below): a transaction then
        # really starts at BEGIN, and the writer's starts IMMEDIATE (write lock first).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode = WAL")  # the API reads while we write
            cursor.execute("PRAGMA synchronous = NORMAL")  # WAL-safe; the chain is the backup
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("provnet_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest shipped revision (no-op when it is there)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect().execution_options(provnet_write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


class IndexStore:
    """The index database of one deployment."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(provnet_write=True) as conn, conn.begin():
            yield conn

    # --- state ------------------------------------------------------------------------

    def bind(
        self,
        chain_id: int,
        deployment_digest: bytes,
        first_block: int,
        confirmations: int | None,
    ) -> IndexState:
        """Create the state row for this deployment, or check an existing one matches."""
        with self._write() as conn:
            row = conn.execute(select(schema.index_state)).mappings().first()
            if row is None:
                conn.execute(
                    schema.index_state.insert().values(
                        id=1,
                        chain_id=chain_id,
                        deployment_digest=deployment_digest,
                        first_block=first_block,
                        cursor=first_block - 1,
                        cursor_hash=None,
                        confirmations=confirmations,
                        reorgs_seen=0,
                        updated_at=time.time(),
                    )
                )
            else:
                if int(row["chain_id"]) != chain_id:
                    raise IndexMismatch(
                        "chain",
                        f"the database indexes chain id {row['chain_id']}, the chain is {chain_id}",
                    )
                if bytes(row["deployment_digest"]) != deployment_digest:
                    raise IndexMismatch(
                        "manifest",
                        "the database indexes another deployment (other contract addresses); "
                        "use a new database for this manifest",
                    )
                conn.execute(
                    update(schema.index_state)
                    .where(schema.index_state.c.id == 1)
                    .values(confirmations=confirmations)
                )
        return self.state()

    def state(self) -> IndexState:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.index_state)).mappings().first()
        if row is None:
            raise RuntimeError("index database not bound to a deployment yet")
        return _state(row)

    def status(self) -> IndexStatus:
        """Up to which block the index is complete, and its lag behind the head it saw."""
        s = self.state()
        return IndexStatus(
            complete_up_to=s.cursor,
            complete_up_to_hash=None if s.cursor_hash is None else "0x" + s.cursor_hash.hex(),
            head_seen=s.head_seen,
            lag_blocks=None if s.head_seen is None else max(s.head_seen - s.cursor, 0),
            confirmations=s.confirmations,
            reorgs_seen=s.reorgs_seen,
            updated_at=s.updated_at,
        )

    def note_head(self, head: int) -> None:
        with self._write() as conn:
            now = time.time()
            conn.execute(
                update(schema.index_state)
                .where(schema.index_state.c.id == 1)
                .values(head_seen=head, head_seen_at=now, updated_at=now)
            )

    def block_hashes(self, first: int, last: int) -> dict[int, bytes]:
        b = schema.blocks
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(b.c.number, b.c.hash).where(b.c.number >= first, b.c.number <= last)
            ).all()
        return {int(n): bytes(h) for n, h in rows}

    # --- writes -----------------------------------------------------------------------

    def apply_page(
        self,
        expected_cursor: int,
        blocks: Sequence[Mapping[str, Any]],
        rows: Mapping[str, Sequence[Mapping[str, Any]]],
        head: int,
    ) -> bool:
        """Insert one page (its blocks, events and typed rows) and move the cursor to its
        last block, all in one transaction. False when the page was already applied."""
        if not blocks:
            raise ValueError("a page has at least one block")
        numbers = [int(b["number"]) for b in blocks]
        if numbers != list(range(expected_cursor + 1, expected_cursor + 1 + len(blocks))):
            raise ValueError(f"page blocks must follow the cursor {expected_cursor} in order")
        last = blocks[-1]
        with self._write() as conn:
            state = _locked_state(conn)
            if state.cursor != expected_cursor:
                stored = conn.execute(
                    select(schema.blocks.c.hash).where(schema.blocks.c.number == numbers[-1])
                ).scalar()
                if stored is not None and bytes(stored) == bytes(last["hash"]):
                    return False  # the same page, already in: idempotent replay
                raise CursorMoved(
                    f"cursor is at {state.cursor}, the page expected {expected_cursor}"
                )
            if (
                state.cursor_hash is not None
                and bytes(blocks[0]["parent_hash"]) != state.cursor_hash
            ):
                raise CursorMoved(
                    f"block {numbers[0]} does not extend the indexed block {state.cursor}"
                )
            self._insert(conn, schema.blocks.name, [dict(b) for b in blocks])
            for table in schema.CHAIN_TABLES[1:]:
                page_rows = rows.get(table.name)
                if page_rows:
                    self._insert(conn, table.name, page_rows)
            now = time.time()
            conn.execute(
                update(schema.index_state)
                .where(schema.index_state.c.id == 1)
                .values(
                    cursor=numbers[-1],
                    cursor_hash=bytes(last["hash"]),
                    head_seen=head,
                    head_seen_at=now,
                    updated_at=now,
                )
            )
        return True

    def _insert(self, conn: Connection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """A page's rows of one table at once: ``COPY`` on PostgreSQL (several times
        faster than even batched INSERTs), one ``executemany`` on SQLite; both inside
        the page's transaction."""
        if conn.dialect.name != "postgresql":
            conn.execute(schema.metadata.tables[table].insert(), list(rows))
            return
        columns = [c.name for c in schema.metadata.tables[table].columns]
        names = ", ".join(f'"{c}"' for c in columns)
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row.get(c) for c in columns])

    def rollback(self, fork_block: int) -> int:
        """Delete everything above ``fork_block`` (the last block both chains share) and
        move the cursor there; one transaction. Returns the depth rolled back."""
        with self._write() as conn:
            state = _locked_state(conn)
            if fork_block >= state.cursor:
                return 0
            fork_block = max(fork_block, state.first_block - 1)
            for table in schema.CHAIN_TABLES:
                column = table.c.number if table is schema.blocks else table.c.block_number
                conn.execute(delete(table).where(column > fork_block))
            fork_hash = conn.execute(
                select(schema.blocks.c.hash).where(schema.blocks.c.number == fork_block)
            ).scalar()
            depth = state.cursor - fork_block
            now = time.time()
            conn.execute(
                schema.reorgs.insert().values(
                    detected_at=now, old_cursor=state.cursor, fork_block=fork_block, depth=depth
                )
            )
            conn.execute(
                update(schema.index_state)
                .where(schema.index_state.c.id == 1)
                .values(
                    cursor=fork_block,
                    cursor_hash=None if fork_hash is None else bytes(fork_hash),
                    reorgs_seen=state.reorgs_seen + 1,
                    updated_at=now,
                )
            )
        return depth

    # --- inspection (tests, benchmarks, the API's health) -----------------------------

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in schema.CHAIN_TABLES
            }

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every chain-derived row of every table, sorted: two indexes of the same chain
        have equal snapshots."""
        with self.engine.connect() as conn:
            result = {}
            for table in schema.CHAIN_TABLES:
                rows = conn.execute(select(table)).all()
                result[table.name] = sorted(
                    (tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows),
                    key=repr,
                )
            return result


def _state(row: Mapping[Any, Any]) -> IndexState:
    return IndexState(
        chain_id=int(row["chain_id"]),
        deployment_digest=bytes(row["deployment_digest"]),
        first_block=int(row["first_block"]),
        cursor=int(row["cursor"]),
        cursor_hash=None if row["cursor_hash"] is None else bytes(row["cursor_hash"]),
        head_seen=None if row["head_seen"] is None else int(row["head_seen"]),
        head_seen_at=row["head_seen_at"],
        confirmations=row["confirmations"],
        reorgs_seen=int(row["reorgs_seen"]),
        updated_at=float(row["updated_at"]),
    )


def _locked_state(conn: Connection) -> IndexState:
    """The state row, locked against a second writer until the transaction ends."""
    query = select(schema.index_state).where(schema.index_state.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise RuntimeError("index database not bound to a deployment yet")
    return _state(row)
