"""What this node has already disclosed: the queries it answered, per grantee and dataset.

Small-group suppression stops one query from isolating a row, but two queries can still
isolate it by subtraction ("all rows" minus "all rows but X"). A provider therefore
remembers every query it answered on a dataset version for a grantee organisation and
refuses a new one whose selected row set differs from an earlier one by fewer than the
minimum group size (DESIGN §6, "no differencing"). It also meters the differential
privacy budget each grant has spent.

What is stored is the *selection* (the filter as canonical JSON, or none for all rows),
not the selected rows: a dataset version is immutable, so the row set is recomputed
exactly when needed, and the history stays a few hundred bytes per query however large
the dataset. The record is written, durably, *before* the provider contributes anything
to the query: a crash after contributing must never leave an answered query unrecorded.

Concurrency: check-then-record must be atomic per grantee and dataset version, or two
concurrent queries could each pass the check against a history that lacks the other.
``guard`` serialises them within the node process (one node process owns its database,
as for the task state store).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, Integer, LargeBinary, Text, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ledger.canonical import canonical_json
from node.evidence.models import UTCDateTime
from node.evidence.store import Database, require_bytes32, require_int, utc_now


class _HistoryBase(DeclarativeBase):
    """Metadata of the query-history table, separate from the other node tables."""


class AnsweredQueryRow(_HistoryBase):
    __tablename__ = "answered_queries"

    task_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    dataset_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    dataset_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    grantee_org: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    grant_id: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    selection_json: Mapped[str] = mapped_column(Text)
    selected: Mapped[int] = mapped_column(Integer)
    epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("length(task_id) = 32", name="answered_queries_task_id_len"),
        CheckConstraint("selected >= 0", name="answered_queries_selected"),
    )


@dataclass(frozen=True)
class AnsweredQuery:
    task_id: bytes
    grant_id: bytes
    selection: Mapping[str, Any] | None  # None: every row
    selected: int
    epsilon: float | None


class QueryHistory:
    """Answered queries and spent privacy budget, in the node's database."""

    def __init__(self, database: str | Database) -> None:
        """Open by URL, or share an open `Database` (the node's evidence database)."""
        self._owned = isinstance(database, str)
        self.db = Database(database) if isinstance(database, str) else database
        try:
            self.db.create_schema(_HistoryBase.metadata)
        except BaseException:
            if self._owned:
                self.db.close()
            raise
        self._locks: dict[tuple[bytes, bytes, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def close(self) -> None:
        if self._owned:
            self.db.close()

    def __enter__(self) -> QueryHistory:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def guard(self, grantee_org: bytes, dataset_id: bytes, version: int) -> Iterator[None]:
        """Hold while checking a new query against the history and recording it."""
        key = (bytes(grantee_org), bytes(dataset_id), version)
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def answered(self, grantee_org: bytes, dataset_id: bytes, version: int) -> list[AnsweredQuery]:
        grantee = require_bytes32(grantee_org, "grantee_org")
        dataset = require_bytes32(dataset_id, "dataset_id")

        def work(session: Session) -> list[AnsweredQuery]:
            rows = session.scalars(
                select(AnsweredQueryRow)
                .where(
                    AnsweredQueryRow.grantee_org == grantee,
                    AnsweredQueryRow.dataset_id == dataset,
                    AnsweredQueryRow.dataset_version == version,
                )
                .order_by(AnsweredQueryRow.created_at, AnsweredQueryRow.task_id)
            ).all()
            return [_answered(row) for row in rows]

        return self.db.run(work)

    def record(
        self,
        *,
        task_id: bytes,
        dataset_id: bytes,
        version: int,
        grantee_org: bytes,
        grant_id: bytes,
        selection: Mapping[str, Any] | None,
        selected: int,
        epsilon: float | None,
    ) -> bool:
        """Record an answered query; False if this task was already recorded (a retry)."""
        values = {
            "task_id": require_bytes32(task_id, "task_id"),
            "dataset_id": require_bytes32(dataset_id, "dataset_id"),
            "dataset_version": require_int(version, "version", 1),
            "grantee_org": require_bytes32(grantee_org, "grantee_org"),
            "grant_id": require_bytes32(grant_id, "grant_id"),
            "selection_json": canonical_json(
                None if selection is None else dict(selection)
            ).decode(),
            "selected": require_int(selected, "selected"),
            "epsilon": epsilon,
            "created_at": utc_now(),
        }

        def work(session: Session) -> bool:
            return self.db.insert_ignore(session, AnsweredQueryRow, **values) == 1

        return self.db.run(work, write=True)

    def epsilon_spent(self, grant_id: bytes) -> float:
        grant = require_bytes32(grant_id, "grant_id")

        def work(session: Session) -> float:
            total = session.scalar(
                select(func.coalesce(func.sum(AnsweredQueryRow.epsilon), 0.0)).where(
                    AnsweredQueryRow.grant_id == grant
                )
            )
            return float(total or 0.0)

        return self.db.run(work)


def _answered(row: AnsweredQueryRow) -> AnsweredQuery:
    selection = json.loads(row.selection_json)
    return AnsweredQuery(
        task_id=bytes(row.task_id),
        grant_id=bytes(row.grant_id),
        selection=selection,
        selected=row.selected,
        epsilon=row.epsilon,
    )
