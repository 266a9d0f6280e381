"""Metering of anonymous lookups: quota blocks per querier, settled per period, never per query.

Why this module exists: every lookup consumes grant uses (DESIGN §6), but a chain write
per query would undo the relay's anonymity: a provider that sees "bank X used one query"
on chain at the moment a blinded element arrives learns who asked. So the relay counts
use off chain, per ``(querier_org, purpose, grant_id)``, and writes to the chain only:

* **quota blocks**, bought ahead: one grant use buys ``block_size`` queries
  (:meth:`Meter.add_blocks`, keyed by the reference of the on-chain use so a replay
  does not credit twice). A query beyond the blocks paid for is refused with
  :class:`QuotaExhausted` *before* anything is counted or held. Blocks are bought ahead
  of need, not when the last one runs out, or the purchase itself would time a query;
* **settlements**, one per ``(org, purpose, grant, period)`` with any use, released
  only once the period has ended (:meth:`Meter.settlements`): the chain sees "X made N
  queries between the period's start and end, completing B blocks", dated by period
  boundaries that every querier shares, never by a query's time. Even a block that
  completes mid-period is reported at the period's end, for the same reason.

Storage is append-only SQL through ``node.evidence.store.Database`` (SQLite or
PostgreSQL): purchases, per-submission charges (with their period, not their time) and
issued settlements. A settlement already returned is recorded and never returned again,
also after a restart; a charge into a period that was already settled is refused, so a
settlement never under-reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ledger.canonical import canonical_json, digest_json
from node.evidence.models import UTCDateTime, guard_append_only
from node.evidence.store import Database, utc_now

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_PERIOD_SECONDS",
    "MAX_ORG_LENGTH",
    "MAX_PURPOSE_LENGTH",
    "InvalidMeterInput",
    "InvalidMeterPolicy",
    "Meter",
    "MeterPolicy",
    "MeterPolicyMismatch",
    "MeteringError",
    "PeriodClosed",
    "QuotaExhausted",
    "Settlement",
    "Usage",
    "check_grant_id",
    "check_org",
    "check_purpose",
    "period_start",
]

DEFAULT_BLOCK_SIZE = 100
DEFAULT_PERIOD_SECONDS = 86_400  # one UTC day: periods are aligned to the Unix epoch
MAX_ORG_LENGTH = 200
MAX_PURPOSE_LENGTH = 64


class MeteringError(ValueError):
    """Base of this module's errors."""


class InvalidMeterPolicy(MeteringError):
    """A policy value out of range; the message names the field."""


class InvalidMeterInput(MeteringError):
    """A malformed org, purpose, grant id, count or time; the message names the field."""


class MeterPolicyMismatch(MeteringError):
    """The database was metered under another policy: counts would change meaning."""


class QuotaExhausted(MeteringError):
    """The querier has not paid for enough quota blocks for this query (or for any)."""

    def __init__(
        self, org: str, purpose: str, grant_id: bytes, used: int, requested: int, capacity: int
    ) -> None:
        self.org = org
        self.purpose = purpose
        self.grant_id = grant_id
        self.used = used
        self.requested = requested
        self.capacity = capacity
        super().__init__(
            f"quota exhausted for org {org!r}, purpose {purpose!r}, grant 0x{grant_id.hex()}: "
            f"{used} of {capacity} queries used, {requested} more requested; "
            "consume another grant use (a quota block) before querying again"
        )


class PeriodClosed(MeteringError):
    """A charge dated in a period whose settlement was already issued."""


@dataclass(frozen=True)
class MeterPolicy:
    """``block_size`` queries per grant use; settlement periods of ``period_seconds``.

    Defaults: blocks of 100 queries, one period per UTC day. Longer periods and larger
    blocks reveal less about when and how much each member queries, at the price of
    coarser (later) settlement on chain.
    """

    block_size: int = DEFAULT_BLOCK_SIZE
    period_seconds: int = DEFAULT_PERIOD_SECONDS

    def __post_init__(self) -> None:
        for name in ("block_size", "period_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidMeterPolicy(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Usage:
    """Where a querier stands on one grant: queries used, blocks paid, queries allowed."""

    used: int
    blocks: int
    capacity: int

    @property
    def remaining(self) -> int:
        return self.capacity - self.used


@dataclass(frozen=True)
class Settlement:
    """What to write on chain for one querier, purpose, grant and closed period.

    ``count`` queries were made in ``[period_start, period_end)``; ``blocks_completed``
    quota blocks were used up in that period. Times are period boundaries only.
    """

    org: str
    purpose: str
    grant_id: bytes
    period_start: int
    period_end: int
    count: int
    blocks_completed: int

    @property
    def settlement_id(self) -> bytes:
        """A digest naming this settlement: the idempotency key of its chain write."""
        fields: dict[str, Any] = asdict(self)
        fields["grant_id"] = self.grant_id.hex()
        return digest_json("lookup-settlement", fields)


# --- validation ----------------------------------------------------------------------


def _check_text(value: object, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidMeterInput(f"{field} must be a non-empty string, got {value!r}")
    if len(value) > max_length or not value.isprintable():
        raise InvalidMeterInput(
            f"{field} must be printable text of at most {max_length} characters, got {value!r}"
        )
    return value


def check_org(value: object) -> str:
    """A querier organisation: non-empty printable text."""
    return _check_text(value, "querier_org", MAX_ORG_LENGTH)


def check_purpose(value: object) -> str:
    """A purpose code (e.g. ``"account-opening"``): non-empty printable text."""
    return _check_text(value, "purpose", MAX_PURPOSE_LENGTH)


def check_grant_id(value: object) -> bytes:
    """A grant id: exactly 32 bytes, as on chain."""
    if not isinstance(value, bytes) or len(value) != 32:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise InvalidMeterInput(f"grant_id must be 32 bytes, got {got}")
    return value


def _check_count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidMeterInput(f"{field} must be a positive integer, got {value!r}")
    return value


def _check_now(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidMeterInput(f"now must be a finite number of seconds, got {value!r}")
    if value < 0:
        raise InvalidMeterInput(f"now must not be before the Unix epoch, got {value!r}")
    return float(value)


def period_start(now: float, period_seconds: int) -> int:
    """Start of the period holding ``now``: periods are aligned to the Unix epoch."""
    return int(now // period_seconds) * period_seconds


# --- tables --------------------------------------------------------------------------


class _MeterBase(DeclarativeBase):
    """Metadata of the metering tables, apart from every other node table."""


class _ConfigRow(_MeterBase):
    """The policy the counts were made under (one row)."""

    __tablename__ = "lookup_meter_config"

    key: Mapped[str] = mapped_column(String(16), primary_key=True)
    policy_json: Mapped[str] = mapped_column(Text)


class _AccountRow(_MeterBase):
    """One row per (org, purpose, grant): the row a PostgreSQL charge locks."""

    __tablename__ = "lookup_meter_accounts"

    org: Mapped[str] = mapped_column(String(MAX_ORG_LENGTH), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(MAX_PURPOSE_LENGTH), primary_key=True)
    grant_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class _BlockRow(_MeterBase):
    """A purchase of quota blocks, keyed by the reference of its on-chain grant use."""

    __tablename__ = "lookup_meter_blocks"

    reference: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    org: Mapped[str] = mapped_column(String(MAX_ORG_LENGTH), index=True)
    purpose: Mapped[str] = mapped_column(String(MAX_PURPOSE_LENGTH))
    grant_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    blocks: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("blocks >= 1", name="lookup_meter_blocks_pos"),)


class _ChargeRow(_MeterBase):
    """One accepted submission: how many queries, in which period (not at what time)."""

    __tablename__ = "lookup_meter_charges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org: Mapped[str] = mapped_column(String(MAX_ORG_LENGTH), index=True)
    purpose: Mapped[str] = mapped_column(String(MAX_PURPOSE_LENGTH))
    grant_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    period_start: Mapped[int] = mapped_column(BigInteger, index=True)
    count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("count >= 1", name="lookup_meter_charges_pos"),)


class _SettlementRow(_MeterBase):
    """A settlement already handed out for writing on chain: never handed out again."""

    __tablename__ = "lookup_meter_settlements"

    org: Mapped[str] = mapped_column(String(MAX_ORG_LENGTH), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(MAX_PURPOSE_LENGTH), primary_key=True)
    grant_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    period_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    period_end: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    blocks_completed: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())


_TABLES = (_ConfigRow, _AccountRow, _BlockRow, _ChargeRow, _SettlementRow)
_APPEND_ONLY = guard_append_only(*_TABLES)


_Key = tuple[str, str, bytes]


# --- the meter -----------------------------------------------------------------------


class Meter:
    """Per-querier, per-purpose, per-grant counts with prepaid quota blocks."""

    def __init__(self, database: str | Database, policy: MeterPolicy | None = None) -> None:
        """Open by URL, or share an open ``Database`` (e.g. with the relay's query log,
        so that a charge and its log records are written in one transaction)."""
        self.policy = policy if policy is not None else MeterPolicy()
        self._owned = isinstance(database, str)
        self.db = Database(database) if isinstance(database, str) else database
        try:
            self.db.create_schema(_MeterBase.metadata, _APPEND_ONLY)
            self._pin_policy()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._owned:
            self.db.close()

    def _pin_policy(self) -> None:
        wanted = canonical_json(asdict(self.policy)).decode()

        def work(session: Session) -> str:
            self.db.insert_ignore(session, _ConfigRow, key="policy", policy_json=wanted)
            stored = session.scalar(
                select(_ConfigRow.policy_json).where(_ConfigRow.key == "policy")
            )
            return str(stored)

        stored = self.db.run(work, write=True)
        if stored != wanted:
            raise MeterPolicyMismatch(
                f"this database was metered under policy {stored}, not {wanted}; "
                "open it with the same block size and period, or use a new database"
            )

    # --- quota ---------------------------------------------------------------------

    def add_blocks(
        self, org: str, purpose: str, grant_id: bytes, blocks: int, *, reference: bytes
    ) -> bool:
        """Credit ``blocks`` quota blocks bought with the grant use named ``reference``
        (e.g. the transaction hash that consumed it). False if already credited."""
        key = (check_org(org), check_purpose(purpose), check_grant_id(grant_id))
        blocks = _check_count(blocks, "blocks")
        if not isinstance(reference, bytes) or len(reference) != 32:
            raise InvalidMeterInput("reference must be 32 bytes (the grant use's tx hash or id)")

        def work(session: Session) -> bool:
            self._account(session, key, create=True)
            inserted = self.db.insert_ignore(
                session,
                _BlockRow,
                reference=reference,
                org=key[0],
                purpose=key[1],
                grant_id=key[2],
                blocks=blocks,
                recorded_at=utc_now(),
            )
            return inserted == 1

        return self.db.run(work, write=True)

    def usage(self, org: str, purpose: str, grant_id: bytes) -> Usage:
        key = (check_org(org), check_purpose(purpose), check_grant_id(grant_id))
        return self.db.run(lambda session: self._usage(session, key))

    def charge(
        self,
        org: str,
        purpose: str,
        grant_id: bytes,
        count: int,
        now: float,
        also: Callable[[Session], object] | None = None,
    ) -> Usage:
        """Count ``count`` queries at time ``now``, or raise and count nothing.

        :class:`QuotaExhausted` if they would exceed the blocks paid for;
        :class:`PeriodClosed` if ``now`` falls in an already settled period. ``also``
        runs in the same transaction (the relay writes its query log records there), so
        either both are stored or neither.
        """
        key = (check_org(org), check_purpose(purpose), check_grant_id(grant_id))
        count = _check_count(count, "count")
        start = period_start(_check_now(now), self.policy.period_seconds)

        def work(session: Session) -> Usage:
            self._account(session, key, create=False)
            before = self._usage(session, key)
            if before.used + count > before.capacity:
                raise QuotaExhausted(*key, before.used, count, before.capacity)
            settled = session.scalar(
                select(func.count())
                .select_from(_SettlementRow)
                .where(*self._match(_SettlementRow, key), _SettlementRow.period_start == start)
            )
            if settled:
                raise PeriodClosed(
                    f"the period starting at {start} is already settled for {key[0]!r}; "
                    "charges must be dated in an open period (is the clock behind?)"
                )
            session.add(
                _ChargeRow(
                    org=key[0], purpose=key[1], grant_id=key[2], period_start=start, count=count
                )
            )
            if also is not None:
                also(session)
            return Usage(before.used + count, before.blocks, before.capacity)

        return self.db.run(work, write=True)

    # --- settlement ----------------------------------------------------------------

    def settlements(self, now: float) -> list[Settlement]:
        """Settlements of every period that has ended by ``now`` and was not yet issued.

        Each returned settlement is recorded as issued in the same transaction, so a
        later call (also after a restart, or from a concurrent caller) never returns it
        again; the caller writes them on chain, with ``settlement_id`` as the
        idempotency key of its retries.
        """
        current = period_start(_check_now(now), self.policy.period_seconds)

        def work(session: Session) -> list[Settlement]:
            if self.db.dialect == "postgresql":
                # Wait for in-flight charges (they lock their account row) and make later
                # ones wait for this settlement, so none lands in a period just settled.
                session.execute(select(_AccountRow.org).with_for_update()).all()
            rows = session.execute(
                select(
                    _ChargeRow.org,
                    _ChargeRow.purpose,
                    _ChargeRow.grant_id,
                    _ChargeRow.period_start,
                    func.sum(_ChargeRow.count),
                )
                .group_by(
                    _ChargeRow.org, _ChargeRow.purpose, _ChargeRow.grant_id, _ChargeRow.period_start
                )
                .order_by(
                    _ChargeRow.org, _ChargeRow.purpose, _ChargeRow.grant_id, _ChargeRow.period_start
                )
            ).all()
            cumulative: dict[_Key, int] = {}
            issued: list[Settlement] = []
            for org, purpose, grant, start, total in rows:
                key = (str(org), str(purpose), bytes(grant))
                before = cumulative.get(key, 0)
                cumulative[key] = before + int(total)
                if int(start) >= current:
                    continue  # the period is still open
                size = self.policy.block_size
                settlement = Settlement(
                    org=key[0],
                    purpose=key[1],
                    grant_id=key[2],
                    period_start=int(start),
                    period_end=int(start) + self.policy.period_seconds,
                    count=int(total),
                    blocks_completed=(before + int(total)) // size - before // size,
                )
                inserted = self.db.insert_ignore(
                    session,
                    _SettlementRow,
                    org=settlement.org,
                    purpose=settlement.purpose,
                    grant_id=settlement.grant_id,
                    period_start=settlement.period_start,
                    period_end=settlement.period_end,
                    count=settlement.count,
                    blocks_completed=settlement.blocks_completed,
                    issued_at=utc_now(),
                )
                if inserted:
                    issued.append(settlement)
            return issued

        return self.db.run(work, write=True)

    def issued(self) -> list[Settlement]:
        """Every settlement handed out so far, oldest period first."""

        def work(session: Session) -> list[Settlement]:
            rows = session.scalars(
                select(_SettlementRow).order_by(
                    _SettlementRow.period_start,
                    _SettlementRow.org,
                    _SettlementRow.purpose,
                    _SettlementRow.grant_id,
                )
            ).all()
            return [
                Settlement(
                    r.org,
                    r.purpose,
                    bytes(r.grant_id),
                    int(r.period_start),
                    int(r.period_end),
                    int(r.count),
                    int(r.blocks_completed),
                )
                for r in rows
            ]

        return self.db.run(work)

    # --- helpers -------------------------------------------------------------------

    @staticmethod
    def _match(table: Any, key: _Key) -> tuple[Any, ...]:
        return (table.org == key[0], table.purpose == key[1], table.grant_id == key[2])

    def _account(self, session: Session, key: _Key, *, create: bool) -> bool:
        """Hold the account's lock for the transaction; False if it does not exist.

        SQLite: the write transaction already holds the database lock. PostgreSQL: lock
        the account row, so two concurrent charges cannot both pass the quota check.
        """
        if create:
            self.db.insert_ignore(
                session,
                _AccountRow,
                org=key[0],
                purpose=key[1],
                grant_id=key[2],
                created_at=utc_now(),
            )
        query = select(_AccountRow.org).where(*self._match(_AccountRow, key))
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        return session.execute(query).first() is not None

    def _usage(self, session: Session, key: _Key) -> Usage:
        used = session.scalar(
            select(func.coalesce(func.sum(_ChargeRow.count), 0)).where(
                *self._match(_ChargeRow, key)
            )
        )
        blocks = session.scalar(
            select(func.coalesce(func.sum(_BlockRow.blocks), 0)).where(*self._match(_BlockRow, key))
        )
        paid = int(blocks or 0)
        return Usage(int(used or 0), paid, paid * self.policy.block_size)
