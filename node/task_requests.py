"""Which request id a task of this node was created with: the reverse of `task_id_for`.

A task id is a hash of the organisation and the operator's request id, so the node can go
from a request id to the task but not back. The operator thinks in request ids ("job-1"),
so the node keeps the mapping for the tasks it created, written after the creating
transaction was mined (alongside the task's local record) and never changed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ledger.ids import InvalidInput
from node.evidence.models import UTCDateTime
from node.evidence.store import Database, require_bytes32, utc_now


class _RequestBase(DeclarativeBase):
    """Metadata of the request-id table, separate from the task-state tables."""


class TaskRequestRow(_RequestBase):
    __tablename__ = "task_requests"

    task_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("length(task_id) = 32", name="task_requests_task_id_len"),)


class TaskRequests:
    """The request id of each task this node created, in the node's database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.create_schema(_RequestBase.metadata)

    def record(self, task_id: bytes, request_id: str) -> None:
        """Remember ``request_id`` for ``task_id``; the same pair again is a no-op, a
        different request id for the same task raises (the id derivation forbids it)."""
        task_id = require_bytes32(task_id, "task_id")

        def work(session: Session) -> None:
            self.db.insert_ignore(
                session,
                TaskRequestRow,
                task_id=task_id,
                request_id=request_id,
                created_at=utc_now(),
            )
            row = session.get(TaskRequestRow, task_id)
            if row is not None and row.request_id != request_id:
                raise InvalidInput(
                    "requestId", f"task 0x{task_id.hex()} is recorded as {row.request_id!r}"
                )

        self.db.run(work, write=True)

    def get(self, task_id: bytes) -> str | None:
        task_id = require_bytes32(task_id, "task_id")
        with self.db.session() as session:
            row = session.get(TaskRequestRow, task_id)
            return None if row is None else row.request_id
