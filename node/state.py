"""Persisted task state for the chain-driven task runner.

A node may crash or be restarted at any point of a task. What it must never do after a
restart is send an on-chain action twice (a second `anchorInput` or `submitResult`
either reverts, wasting gas and confusing the trail, or worse, records a second claim),
nor forget a task it had accepted. So the runner keeps, in the node's database:

* one record per task: its **phase**, which only ever moves forward along
  `TRANSITIONS`, the node's role, the task parameters, the result and, for a refusal or
  failure, the reason name and detail;
* one **idempotency marker** per on-chain action of a task. The protocol is
  ``mark_pending`` (durable before anything is signed; returns False if the action was
  already claimed) -> sign -> ``mark_sent`` with the transaction hash -> broadcast.
  A signed transaction's hash is known before it is broadcast, so recording it first
  means that after a crash, "pending without a tx hash" reliably means "never
  broadcast" (the runner may `release` and retry), and "sent" gives the hash whose
  receipt to look up instead of sending again. A runner that broadcasts before
  `mark_sent` must treat "pending" as "maybe sent" and check the chain.

Phases: ``seen`` (read TaskCreated) -> ``accepted`` | ``refused`` | ``failed``;
``accepted`` -> ``input_anchored`` | ``running`` (a role without inputs, such as an
aggregator) | ``failed``; ``input_anchored`` -> ``running`` | ``failed``; ``running`` ->
``result_submitted`` | ``failed``; ``result_submitted`` -> ``done`` | ``failed``;
``refused`` -> ``done`` (the refusal is on chain) | ``failed``. ``done`` and ``failed``
are final. ``refused`` is deliberately not final: the decision is stored before the
refusal transaction is sent (DESIGN §9: chain writes only after off-chain state is
durable), so a restarted node still finds it among `open_tasks` and sends it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ledger.canonical import canonical_json
from ledger.ids import InvalidInput
from node.evidence.models import UTCDateTime
from node.evidence.store import Database, require_bytes32, require_int, utc_now

__all__ = [
    "ACTIONS",
    "FINAL_PHASES",
    "PHASES",
    "TRANSITIONS",
    "TaskError",
    "TaskRecord",
    "TaskStateStore",
    "checkpoint_action",
]

PHASES = (
    "seen",
    "accepted",
    "refused",
    "input_anchored",
    "running",
    "result_submitted",
    "done",
    "failed",
)
FINAL_PHASES = frozenset({"done", "failed"})
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "seen": frozenset({"accepted", "refused", "failed"}),
    "accepted": frozenset({"input_anchored", "running", "failed"}),
    "refused": frozenset({"done", "failed"}),
    "input_anchored": frozenset({"running", "failed"}),
    "running": frozenset({"result_submitted", "failed"}),
    "result_submitted": frozenset({"done", "failed"}),
    "done": frozenset(),
    "failed": frozenset(),
}
# Phases that carry the reason for not finishing normally.
_ERROR_PHASES = frozenset({"refused", "failed"})
_RESULT_PHASES = frozenset({"result_submitted", "done"})

# On-chain actions a task runner sends at most once per task. Checkpoints are per round:
# "checkpoint:<k>", built with `checkpoint_action(k)`.
ACTIONS = ("accept", "anchor_input", "submit_result", "refuse", "report_failure")
_CHECKPOINT = re.compile(r"checkpoint:(0|[1-9][0-9]{0,9})")
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_REASON = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_DETAIL_LENGTH = 4000

_PENDING, _SENT = "pending", "sent"


def checkpoint_action(round_index: int) -> str:
    """The action name of the checkpoint anchored after round ``round_index``."""
    return f"checkpoint:{require_int(round_index, 'round_index')}"


class _StateBase(DeclarativeBase):
    """Metadata of the task-state tables, separate from the evidence tables."""


class TaskStateRow(_StateBase):
    __tablename__ = "task_states"

    task_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(24))
    # NULL until known: a provider learns the parameters from the aggregator at run time.
    params_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("length(task_id) = 32", name="task_states_task_id_len"),
        CheckConstraint(
            "phase IN (" + ", ".join(f"'{p}'" for p in PHASES) + ")", name="task_states_phase"
        ),
    )


class TaskActionRow(_StateBase):
    __tablename__ = "task_actions"

    task_id: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("task_states.task_id"), primary_key=True
    )
    action: Mapped[str] = mapped_column(String(48), primary_key=True)
    status: Mapped[str] = mapped_column(String(8))
    tx_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint(f"status IN ('{_PENDING}', '{_SENT}')", name="task_actions_status"),
        # "sent" exactly when a tx hash is known: no state where one exists without the other.
        CheckConstraint(
            f"(status = '{_SENT}' AND tx_hash IS NOT NULL) OR "
            f"(status = '{_PENDING}' AND tx_hash IS NULL)",
            name="task_actions_sent_has_tx",
        ),
    )


@dataclass(frozen=True)
class TaskError:
    """Why a task was refused or failed: a reason name (e.g. a `Reason` enum member's
    name such as ``GRANT_INVALID``) and free-text detail for the operator.

    Kept as two fields rather than one message so that an operator's dashboard and the
    on-chain reason code can be matched by name without parsing prose.
    """

    reason: str
    detail: str = ""

    @classmethod
    def parse(cls, text: str) -> TaskError:
        """``"REASON: detail"`` (the form `str()` of the runner's exceptions takes) or a
        bare ``"REASON"``; raises `InvalidInput` if it does not start with a name."""
        if not isinstance(text, str):
            raise InvalidInput("error", f"expected a string, got {type(text).__name__}")
        reason, _, detail = text.partition(": ")
        if not _REASON.fullmatch(reason):
            raise InvalidInput("error", f"expected 'REASON: detail', got {text[:80]!r}")
        return cls(reason, detail)


@dataclass(frozen=True)
class TaskRecord:
    task_id: bytes
    role: str
    phase: str
    params_json: str | None
    result_json: str | None
    error: TaskError | None
    created_at: datetime
    updated_at: datetime

    @property
    def params(self) -> Any:
        """The parameters as JSON values; None while they are not known."""
        return None if self.params_json is None else json.loads(self.params_json)

    @property
    def result(self) -> Any:
        return None if self.result_json is None else json.loads(self.result_json)

    @property
    def final(self) -> bool:
        return self.phase in FINAL_PHASES


def _record(row: TaskStateRow) -> TaskRecord:
    error = None
    if row.error_reason is not None:
        error = TaskError(row.error_reason, row.error_detail or "")
    return TaskRecord(
        task_id=bytes(row.task_id),
        role=row.role,
        phase=row.phase,
        params_json=row.params_json,
        result_json=row.result_json,
        error=error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _json_text(value: object, field: str) -> str:
    try:
        return canonical_json(value).decode("utf-8")
    except ValueError as exc:
        raise InvalidInput(field, f"not JSON-encodable: {exc}") from None


def _check_action(action: object) -> str:
    if isinstance(action, str) and (action in ACTIONS or _CHECKPOINT.fullmatch(action)):
        return action
    raise InvalidInput(
        "action", f"must be one of {', '.join(ACTIONS)} or checkpoint:<round>, got {action!r}"
    )


def _check_error(error: object) -> TaskError:
    if isinstance(error, str):
        error = TaskError.parse(error)
    if not isinstance(error, TaskError):
        raise InvalidInput("error", f"expected a TaskError, got {type(error).__name__}")
    if not isinstance(error.reason, str) or not _REASON.fullmatch(error.reason):
        raise InvalidInput("error.reason", f"must be a reason name, got {error.reason!r}")
    if not isinstance(error.detail, str):
        raise InvalidInput("error.detail", f"expected a string, got {type(error.detail).__name__}")
    # Details often come from exception messages: keep them storable rather than losing
    # the failure record over a NUL byte or a multi-megabyte message.
    detail = error.detail.replace("\x00", "\\x00")
    detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(detail) > MAX_DETAIL_LENGTH:
        detail = detail[: MAX_DETAIL_LENGTH - 1] + "…"
    return TaskError(error.reason, detail)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _check_result_unchanged(row: TaskStateRow, result_json: str) -> None:
    if row.result_json is not None and row.result_json != result_json:
        raise InvalidInput(
            "result", f"task {_hex(bytes(row.task_id))} already has a different result"
        )


class TaskStateStore:
    """Task phases and on-chain idempotency markers, in the node's database.

    Uses the same database URL as the evidence store (its own tables). Every method is
    one transaction; on PostgreSQL the task's row is locked for a read-modify-write, on
    SQLite the transaction holds the write lock, so two runner threads cannot both
    advance a task or both claim an action.
    """

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        try:
            self.db.create_schema(_StateBase.metadata)
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> TaskStateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- task records ----------------------------------------------------------------

    def create(self, task_id: bytes, role: str, params: object = None) -> TaskRecord:
        """Record a newly seen task in phase ``seen``, or return the stored record.

        Idempotent: chain events are re-read after a restart, so creating a task that
        exists returns the stored record in whatever phase it has reached. A different
        role, or parameters different from stored ones, raise ValueError; parameters
        (any JSON value, stored as RFC 8785 text) may be omitted and supplied by a later
        call once they are known, but never changed.
        """
        task_id = require_bytes32(task_id, "task_id")
        if not isinstance(role, str) or not _ROLE.fullmatch(role):
            raise InvalidInput("role", f"must be a lowercase role name, got {role!r}")
        params_json = None if params is None else _json_text(params, "params")

        def work(session: Session) -> TaskRecord:
            now = utc_now()
            inserted = self.db.insert_ignore(
                session,
                TaskStateRow,
                task_id=task_id,
                role=role,
                phase="seen",
                params_json=params_json,
                created_at=now,
                updated_at=now,
            )
            row = self._row(session, task_id, lock=not inserted)
            if inserted:
                return _record(row)
            if row.role != role:
                raise InvalidInput(
                    "role", f"task {_hex(task_id)} is recorded with role {row.role!r}, not {role!r}"
                )
            if params_json is not None and row.params_json != params_json:
                if row.params_json is not None:
                    raise InvalidInput(
                        "params", f"task {_hex(task_id)} is recorded with other parameters"
                    )
                row.params_json = params_json
                row.updated_at = utc_now()
                session.flush()
            return _record(row)

        return self.db.run(work, write=True)

    def ensure(self, task_id: bytes, role: str, params: object = None) -> TaskRecord:
        """Alias of `create`, for call sites that read better as "make sure it exists"."""
        return self.create(task_id, role, params)

    def get(self, task_id: bytes) -> TaskRecord | None:
        task_id = require_bytes32(task_id, "task_id")
        with self.db.session() as session:
            row = session.get(TaskStateRow, task_id)
            return None if row is None else _record(row)

    def advance(
        self,
        task_id: bytes,
        phase: str,
        *,
        result: object = None,
        error: TaskError | str | None = None,
        unless_final: bool = False,
    ) -> TaskRecord:
        """Move the task to ``phase`` along an allowed edge of `TRANSITIONS`.

        ``unless_final`` leaves a task that is already done or failed as it is, decided
        under the row lock: a caller reacting to the chain (the task ended there) may
        race the task's own worker failing it, and must not fail it a second time.

        ``error`` (a `TaskError` or ``"REASON: detail"``) is required for
        ``refused``/``failed`` and refused otherwise; ``result`` (any JSON value) may be
        given with ``result_submitted``/``done`` and never replaces a different one.
        Anything else, including staying in the same phase, raises ValueError naming
        the task, the current phase and the requested one.
        """
        task_id = require_bytes32(task_id, "task_id")
        if not isinstance(phase, str) or phase not in PHASES:
            raise InvalidInput("phase", f"must be one of {', '.join(PHASES)}, got {phase!r}")
        checked_error: TaskError | None = None
        if phase in _ERROR_PHASES:
            if error is None:
                raise InvalidInput("error", f"moving to {phase!r} needs a reason")
            checked_error = _check_error(error)
        elif error is not None:
            raise InvalidInput(
                "error", f"only a refused or failed task has an error, not {phase!r}"
            )
        result_json: str | None = None
        if result is not None:
            if phase not in _RESULT_PHASES:
                raise InvalidInput(
                    "result", f"a result is recorded with result_submitted or done, not {phase!r}"
                )
            result_json = _json_text(result, "result")

        def work(session: Session) -> TaskRecord:
            row = self._row(session, task_id, lock=True)
            if unless_final and row.phase in FINAL_PHASES:
                return _record(row)
            if phase not in TRANSITIONS[row.phase]:
                raise InvalidInput(
                    "phase",
                    f"task {_hex(task_id)} cannot move from {row.phase!r} to {phase!r}",
                )
            if result_json is not None:
                _check_result_unchanged(row, result_json)
                row.result_json = result_json
            row.phase = phase
            if checked_error is not None:
                row.error_reason = checked_error.reason
                row.error_detail = checked_error.detail
            row.updated_at = utc_now()
            session.flush()
            return _record(row)

        return self.db.run(work, write=True)

    def fail(
        self,
        task_id: bytes,
        reason: str,
        detail: str | None = None,
        *,
        unless_final: bool = False,
    ) -> TaskRecord:
        """Shorthand for ``advance(task_id, "failed", error=TaskError(reason, detail))``;
        without ``detail``, ``reason`` may be a whole ``"REASON: detail"`` text."""
        error = TaskError.parse(reason) if detail is None else TaskError(reason, detail)
        return self.advance(task_id, "failed", error=error, unless_final=unless_final)

    def set_result(self, task_id: bytes, result_json: str) -> TaskRecord:
        """Store the task's result (JSON text) without changing its phase.

        For a result known before it is submitted (an aggregator's result and the salt
        of its on-chain commitment): it must be durable before the commitment goes on
        chain, or a crash would leave a commitment nobody can open. Setting the same
        result again is a no-op; a different one, or one on a finished task, raises.
        """
        task_id = require_bytes32(task_id, "task_id")
        if not isinstance(result_json, str):
            raise InvalidInput(
                "result_json", f"expected JSON text, got {type(result_json).__name__}"
            )
        try:
            value = json.loads(result_json)
        except ValueError as exc:
            raise InvalidInput("result_json", f"not valid JSON: {exc}") from None
        canonical = _json_text(value, "result_json")

        def work(session: Session) -> TaskRecord:
            row = self._row(session, task_id, lock=True)
            if row.phase in FINAL_PHASES:
                raise InvalidInput("task_id", f"task {_hex(task_id)} is already {row.phase}")
            if row.result_json != canonical:
                _check_result_unchanged(row, canonical)
                row.result_json = canonical
                row.updated_at = utc_now()
                session.flush()
            return _record(row)

        return self.db.run(work, write=True)

    def open_tasks(self) -> list[TaskRecord]:
        """Tasks that are neither done nor failed, oldest first: what to resume."""
        with self.db.session() as session:
            rows = session.scalars(
                select(TaskStateRow)
                .where(TaskStateRow.phase.not_in(sorted(FINAL_PHASES)))
                .order_by(TaskStateRow.created_at, TaskStateRow.task_id)
            ).all()
            return [_record(r) for r in rows]

    # --- idempotency markers ---------------------------------------------------------

    def mark_pending(self, task_id: bytes, action: str) -> bool:
        """Claim an on-chain action before sending it.

        True: the caller now owns the action and may sign and send it. False: it was
        already claimed (pending or sent) — by an earlier run or another thread — and
        must not be sent again without first consulting `action_tx` / the chain.
        """
        task_id = require_bytes32(task_id, "task_id")
        action = _check_action(action)

        def work(session: Session) -> bool:
            self._row(session, task_id, lock=False)
            inserted = self.db.insert_ignore(
                session,
                TaskActionRow,
                task_id=task_id,
                action=action,
                status=_PENDING,
                tx_hash=None,
                marked_at=utc_now(),
            )
            return inserted == 1

        return self.db.run(work, write=True)

    def mark_sent(self, task_id: bytes, action: str, tx_hash: bytes) -> None:
        """Record the transaction hash of a claimed action (ideally before broadcast).

        Repeating it with the same hash is a no-op; a different hash for an action
        already sent, or an action never claimed, raises ValueError.
        """
        task_id = require_bytes32(task_id, "task_id")
        action = _check_action(action)
        tx_hash = require_bytes32(tx_hash, "tx_hash")

        def work(session: Session) -> None:
            row = self._action(session, task_id, action, lock=True)
            if row is None:
                raise InvalidInput(
                    "action", f"{action} of task {_hex(task_id)} was not marked pending"
                )
            if row.status == _SENT:
                if bytes(row.tx_hash or b"") != tx_hash:
                    raise InvalidInput(
                        "tx_hash",
                        f"{action} of task {_hex(task_id)} was already sent in "
                        f"{_hex(bytes(row.tx_hash or b''))}",
                    )
                return
            row.status = _SENT
            row.tx_hash = tx_hash
            row.sent_at = utc_now()

        self.db.run(work, write=True)

    def release(self, task_id: bytes, action: str) -> None:
        """Drop a pending claim that was certainly never broadcast (e.g. signing failed),
        so the action can be claimed again. A sent action cannot be released."""
        task_id = require_bytes32(task_id, "task_id")
        action = _check_action(action)

        def work(session: Session) -> None:
            row = self._action(session, task_id, action, lock=True)
            if row is None:
                return
            if row.status == _SENT:
                raise InvalidInput(
                    "action", f"{action} of task {_hex(task_id)} was already sent; cannot release"
                )
            session.delete(row)

        self.db.run(work, write=True)

    def action_tx(self, task_id: bytes, action: str) -> bytes | None:
        """The tx hash of a sent action; None if it is unclaimed or only pending."""
        task_id = require_bytes32(task_id, "task_id")
        action = _check_action(action)
        with self.db.session() as session:
            row = self._action(session, task_id, action, lock=False)
            return None if row is None or row.tx_hash is None else bytes(row.tx_hash)

    def action_status(self, task_id: bytes, action: str) -> str | None:
        """``"pending"``, ``"sent"`` or None (never claimed)."""
        task_id = require_bytes32(task_id, "task_id")
        action = _check_action(action)
        with self.db.session() as session:
            row = self._action(session, task_id, action, lock=False)
            return None if row is None else row.status

    def pending_actions(self) -> list[tuple[bytes, str]]:
        """Claims without a tx hash, over all tasks (final ones included, since a
        ``report_failure`` is sent after a task has failed): to reconcile after a crash."""
        with self.db.session() as session:
            rows = session.execute(
                select(TaskActionRow.task_id, TaskActionRow.action)
                .where(TaskActionRow.status == _PENDING)
                .order_by(TaskActionRow.marked_at, TaskActionRow.task_id, TaskActionRow.action)
            ).all()
            return [(bytes(t), str(a)) for t, a in rows]

    # --- helpers ---------------------------------------------------------------------

    def _row(self, session: Session, task_id: bytes, *, lock: bool) -> TaskStateRow:
        query = select(TaskStateRow).where(TaskStateRow.task_id == task_id)
        if lock and self.db.dialect == "postgresql":
            query = query.with_for_update()
        row = session.scalars(query).first()
        if row is None:
            raise InvalidInput("task_id", f"unknown task {_hex(task_id)}")
        return row

    def _action(
        self, session: Session, task_id: bytes, action: str, *, lock: bool
    ) -> TaskActionRow | None:
        query = select(TaskActionRow).where(
            TaskActionRow.task_id == task_id, TaskActionRow.action == action
        )
        if lock and self.db.dialect == "postgresql":
            query = query.with_for_update()
        return session.scalars(query).first()
