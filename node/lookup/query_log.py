"""Query logs of anonymous lookups: append-only, Merkle-checkpointed into ``AnchorLog``.

Why this module exists: the regulator must be able to count who queried how often and
for what purpose, without learning *what* was queried (DESIGN §6). The relay and every
provider therefore keep a log with one record per blinded element they handled::

    (querier_org, time_bucket, purpose, epoch, element_digest)

* ``querier_org`` and ``purpose`` are known to the relay only; providers, who receive
  mixed batches without identities, log ``""`` for both;
* ``time_bucket`` is the start of the UTC hour (int seconds): enough to count per day,
  too coarse to line a record up with a single request;
* ``epoch`` names the log's salt epoch (see below);
* ``element_digest = HMAC-SHA256(salt_epoch, blinded_element)``. The salt is 32 random
  bytes per epoch, kept by the log's owner. The blinded element itself is never stored,
  nor an unkeyed hash of anything the querier chose: with the salt withheld the digest
  says nothing, while a log owner can still show, in a dispute, that a given element
  was (or was not) logged by revealing that epoch's salt.

Records are leaves of an RFC 9162 tree (``ledger.merkle``); a leaf is the RFC 8785
canonical JSON of the record (``ledger.canonical``) with a ``kind`` field for domain
separation. :meth:`QueryLog.checkpoint` anchors ``(tree_size, root)`` in the owner's
``AnchorLog`` log, creating it the first time, only when the log grew, the way the task
runner anchors evidence transcripts. The regulator recomputes roots from the records a
log owner serves (:func:`verify_log`) and checks consistency between checkpoints, so a
dropped, altered or rewritten record is caught against the chain.

Storage is append-only SQL through ``node.evidence.store.Database``: the ORM and the
database (triggers) both refuse UPDATE and DELETE.
"""

from __future__ import annotations

import hmac
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from hashlib import sha256
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Integer,
    LargeBinary,
    String,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from web3.types import TxReceipt

from ledger import merkle
from ledger.canonical import canonical_json
from node.evidence.models import UTCDateTime, guard_append_only
from node.evidence.store import Database, utc_now

__all__ = [
    "BUCKET_SECONDS",
    "SALT_BYTES",
    "AnchorClient",
    "AnchoredRootMismatch",
    "Checkpoint",
    "InconsistentCheckpoints",
    "InvalidLogInput",
    "LogBehindAnchor",
    "LogRootMismatch",
    "LogTruncated",
    "QueryLog",
    "QueryLogError",
    "QueryRecord",
    "count_per_org_day",
    "log_root",
    "time_bucket",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]

BUCKET_SECONDS = 3600
SALT_BYTES = 32
MAX_NAME_LENGTH = 200
MAX_ORG_LENGTH = 200
MAX_PURPOSE_LENGTH = 64
_LEAF_KIND = "lookup-query-log-record"
_LEAF_VERSION = 1


class QueryLogError(ValueError):
    """Base of this module's errors."""


class InvalidLogInput(QueryLogError):
    """A malformed record field, element, size or time; the message names the field."""


class LogTruncated(QueryLogError):
    """The log served has fewer records than a checkpoint covers."""


class LogRootMismatch(QueryLogError):
    """The records do not hash to the anchored root: a record was altered or dropped."""


class InconsistentCheckpoints(QueryLogError):
    """A later checkpoint does not extend an earlier one: history was rewritten."""


class LogBehindAnchor(QueryLogError):
    """The chain holds a longer checkpoint than the local log: records were lost."""


class AnchoredRootMismatch(QueryLogError):
    """The local log's prefix disagrees with the root anchored on chain."""


class AnchorClient(Protocol):
    """The part of ``ledger.clients.anchor_log.AnchorLogClient`` a log checkpoint needs."""

    def own_log_id(self, name: bytes) -> bytes: ...

    def latest(self, log_id: bytes) -> tuple[int, bytes]: ...

    def create_log(self, name: bytes, tree_size: int, root_hash: bytes) -> TxReceipt: ...

    def checkpoint(self, log_id: bytes, tree_size: int, root_hash: bytes) -> TxReceipt: ...


@dataclass(frozen=True)
class QueryRecord:
    """One logged blinded element; see the module docstring for each field."""

    querier_org: str
    time_bucket: int
    purpose: str
    epoch: int
    element_digest: bytes

    def __post_init__(self) -> None:
        _check_text(self.querier_org, "querier_org", MAX_ORG_LENGTH)
        _check_text(self.purpose, "purpose", MAX_PURPOSE_LENGTH)
        _check_int(self.time_bucket, "time_bucket")
        if self.time_bucket % BUCKET_SECONDS:
            raise InvalidLogInput(
                f"time_bucket must be the start of an hour (a multiple of {BUCKET_SECONDS}), "
                f"got {self.time_bucket}"
            )
        _check_int(self.epoch, "epoch")
        if not isinstance(self.element_digest, bytes) or len(self.element_digest) != 32:
            raise InvalidLogInput("element_digest must be 32 bytes")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": _LEAF_KIND,
            "v": _LEAF_VERSION,
            "querier_org": self.querier_org,
            "time_bucket": self.time_bucket,
            "purpose": self.purpose,
            "epoch": self.epoch,
            "element_digest": self.element_digest.hex(),
        }

    def encoded(self) -> bytes:
        """The canonical leaf data (RFC 8785 JSON)."""
        return canonical_json(self.to_json())

    def leaf_hash(self) -> bytes:
        """The record's RFC 9162 leaf hash."""
        return merkle.leaf_hash(self.encoded())


@dataclass(frozen=True)
class Checkpoint:
    """``(tree_size, root)`` of a log, as anchored in ``AnchorLog`` log ``log_id``."""

    log_id: bytes
    tree_size: int
    root: bytes
    tx_hash: bytes | None = None


# --- validation ----------------------------------------------------------------------


def _check_text(value: object, field: str, max_length: int) -> str:
    """Printable text up to ``max_length``; may be empty (providers log ``""``)."""
    if not isinstance(value, str):
        raise InvalidLogInput(f"{field} must be a string, got {type(value).__name__}")
    if len(value) > max_length or not value.isprintable():
        raise InvalidLogInput(
            f"{field} must be printable text of at most {max_length} characters, got {value!r}"
        )
    return value


def _check_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise InvalidLogInput(f"{field} must be an integer in 0..2^53-1, got {value!r}")
    return value


def time_bucket(now: float) -> int:
    """Start of the UTC hour holding ``now`` (Unix seconds)."""
    if isinstance(now, bool) or not isinstance(now, int | float) or not 0 <= now < 2**53:
        raise InvalidLogInput(f"now must be a non-negative number of seconds, got {now!r}")
    return int(now // BUCKET_SECONDS) * BUCKET_SECONDS


# --- tables --------------------------------------------------------------------------


class _LogBase(DeclarativeBase):
    """Metadata of the query-log tables, apart from every other node table."""


class _LogRow(_LogBase):
    """One row per log: the row appenders lock on PostgreSQL."""

    __tablename__ = "lookup_query_logs"

    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class _SaltRow(_LogBase):
    """The owner's secret HMAC salt of one epoch; never served to anyone."""

    __tablename__ = "lookup_query_log_salts"

    log: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    salt: Mapped[bytes] = mapped_column(LargeBinary(SALT_BYTES))


class _RecordRow(_LogBase):
    """One record; ``(log, seq)`` is the key, so two appenders cannot fork the log."""

    __tablename__ = "lookup_query_log_records"

    log: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    querier_org: Mapped[str] = mapped_column(String(MAX_ORG_LENGTH))
    time_bucket: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(MAX_PURPOSE_LENGTH))
    epoch: Mapped[int] = mapped_column(BigInteger)
    element_digest: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (
        CheckConstraint("seq >= 0", name="lookup_query_log_records_seq"),
        CheckConstraint("length(element_digest) = 32", name="lookup_query_log_records_digest"),
    )

    def to_record(self) -> QueryRecord:
        return QueryRecord(
            self.querier_org,
            int(self.time_bucket),
            self.purpose,
            int(self.epoch),
            bytes(self.element_digest),
        )


class _CheckpointRow(_LogBase):
    """A checkpoint this log wrote on chain."""

    __tablename__ = "lookup_query_log_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    log: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), index=True)
    log_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    tx_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


_TABLES = (_LogRow, _SaltRow, _RecordRow, _CheckpointRow)
_APPEND_ONLY = guard_append_only(*_TABLES)


# --- the log -------------------------------------------------------------------------


class QueryLog:
    """One party's append-only query log (the relay's, or one provider's)."""

    def __init__(self, database: str | Database, name: str) -> None:
        """Open log ``name`` in a database given by URL, or in a shared open ``Database``
        (the relay shares its meter's, so a charge and its records are one transaction)."""
        if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
            raise InvalidLogInput(f"name must be 1..{MAX_NAME_LENGTH} characters, got {name!r}")
        _check_text(name, "name", MAX_NAME_LENGTH)
        self.name = name
        self._owned = isinstance(database, str)
        self.db = Database(database) if isinstance(database, str) else database
        try:
            self.db.create_schema(_LogBase.metadata, _APPEND_ONLY)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._owned:
            self.db.close()

    # --- writing -------------------------------------------------------------------

    def append(
        self,
        querier_org: str,
        purpose: str,
        blinded_elements: Sequence[bytes],
        now: float,
        epoch: int,
    ) -> list[QueryRecord]:
        """Log one record per blinded element, in one transaction."""
        return self.db.run(
            lambda session: self.append_in(
                session, querier_org, purpose, blinded_elements, now, epoch
            ),
            write=True,
        )

    def append_in(
        self,
        session: Session,
        querier_org: str,
        purpose: str,
        blinded_elements: Sequence[bytes],
        now: float,
        epoch: int,
    ) -> list[QueryRecord]:
        """:meth:`append` inside the caller's write transaction on this log's database."""
        bucket = time_bucket(now)
        _check_int(epoch, "epoch")
        _check_text(querier_org, "querier_org", MAX_ORG_LENGTH)
        _check_text(purpose, "purpose", MAX_PURPOSE_LENGTH)
        if isinstance(blinded_elements, bytes | str) or not blinded_elements:
            raise InvalidLogInput("blinded_elements must be a non-empty sequence of bytes")
        for i, element in enumerate(blinded_elements):
            if not isinstance(element, bytes) or not element:
                raise InvalidLogInput(f"blinded_elements[{i}] must be non-empty bytes")
        self._lock(session)
        salt = self._salt(session, epoch)
        last = session.scalars(
            select(_RecordRow.seq)
            .where(_RecordRow.log == self.name)
            .order_by(_RecordRow.seq.desc())
            .limit(1)
        ).first()
        seq = 0 if last is None else int(last) + 1
        records = []
        for element in blinded_elements:
            record = QueryRecord(
                querier_org, bucket, purpose, epoch, hmac.new(salt, element, sha256).digest()
            )
            session.add(
                _RecordRow(
                    log=self.name,
                    seq=seq,
                    querier_org=record.querier_org,
                    time_bucket=record.time_bucket,
                    purpose=record.purpose,
                    epoch=record.epoch,
                    element_digest=record.element_digest,
                )
            )
            records.append(record)
            seq += 1
        session.flush()
        return records

    def _lock(self, session: Session) -> None:
        self.db.insert_ignore(session, _LogRow, name=self.name, created_at=utc_now())
        if self.db.dialect == "postgresql":
            session.execute(select(_LogRow.name).where(_LogRow.name == self.name).with_for_update())

    def _salt(self, session: Session, epoch: int) -> bytes:
        """The epoch's salt, drawn from the OS CSPRNG the first time the epoch is used."""
        self.db.insert_ignore(
            session, _SaltRow, log=self.name, epoch=epoch, salt=secrets.token_bytes(SALT_BYTES)
        )
        salt = session.scalar(
            select(_SaltRow.salt).where(_SaltRow.log == self.name, _SaltRow.epoch == epoch)
        )
        return bytes(salt or b"")

    # --- reading -------------------------------------------------------------------

    def salt(self, epoch: int) -> bytes | None:
        """The owner's salt of ``epoch`` (for a dispute); None if the epoch is unused."""
        _check_int(epoch, "epoch")
        with self.db.session() as session:
            salt = session.scalar(
                select(_SaltRow.salt).where(_SaltRow.log == self.name, _SaltRow.epoch == epoch)
            )
            return None if salt is None else bytes(salt)

    def records(self, tree_size: int | None = None) -> list[QueryRecord]:
        """The records in order (the first ``tree_size`` of them if given)."""
        with self.db.session() as session:
            query = select(_RecordRow).where(_RecordRow.log == self.name).order_by(_RecordRow.seq)
            if tree_size is not None:
                query = query.limit(_check_int(tree_size, "tree_size"))
            return [row.to_record() for row in session.scalars(query).all()]

    def _leaves(self, tree_size: int | None) -> list[bytes]:
        leaves = [r.leaf_hash() for r in self.records()]
        if tree_size is not None and not 0 <= _check_int(tree_size, "tree_size") <= len(leaves):
            raise InvalidLogInput(f"tree_size {tree_size} exceeds the log's {len(leaves)} records")
        return leaves if tree_size is None else leaves[:tree_size]

    def size(self) -> int:
        """Number of records in the log."""
        with self.db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(_RecordRow).where(_RecordRow.log == self.name)
            )
            return int(count or 0)

    def root(self, tree_size: int | None = None) -> bytes:
        """RFC 9162 root of the log, or of its first ``tree_size`` records."""
        return merkle.root(self._leaves(tree_size))

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> list[bytes]:
        """Proof that record ``seq`` is in the tree of the first ``tree_size`` records."""
        leaves = self._leaves(tree_size)
        if not 0 <= _check_int(seq, "seq") < len(leaves):
            raise InvalidLogInput(f"seq {seq} out of range for a tree of {len(leaves)} records")
        return merkle.inclusion_proof(leaves, seq)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the first ``old_size`` records are a prefix of the first ``new_size``."""
        leaves = self._leaves(new_size)
        if not 0 < _check_int(old_size, "old_size") <= len(leaves):
            raise InvalidLogInput(f"old_size {old_size} out of range 1..{len(leaves)}")
        return merkle.consistency_proof(leaves, old_size)

    def checkpoints(self) -> list[Checkpoint]:
        """The checkpoints this log wrote on chain, oldest first."""
        with self.db.session() as session:
            rows = session.scalars(
                select(_CheckpointRow)
                .where(_CheckpointRow.log == self.name)
                .order_by(_CheckpointRow.id)
            ).all()
            return [
                Checkpoint(bytes(r.log_id), int(r.tree_size), bytes(r.root), bytes(r.tx_hash))
                for r in rows
            ]

    # --- anchoring -----------------------------------------------------------------

    def checkpoint(self, anchor_client: AnchorClient, name: bytes) -> Checkpoint | None:
        """Anchor the log's current ``(size, root)`` in the client's ``AnchorLog`` log
        ``name``; None (and no transaction) if the chain already holds this size.

        Creates the on-chain log on first use (only its owner can), like the runner's
        evidence checkpoints. Before advancing, the anchored prefix is checked against
        the local records: :class:`AnchoredRootMismatch` if they disagree and
        :class:`LogBehindAnchor` if the chain covers more records than the database
        holds, because anchoring over either would certify a broken history.
        """
        leaves = [r.leaf_hash() for r in self.records()]
        size = len(leaves)
        if size == 0:
            return None
        log_id = anchor_client.own_log_id(name)
        anchored_size, anchored_root = anchor_client.latest(log_id)
        if anchored_size > size:
            raise LogBehindAnchor(
                f"the chain anchors {anchored_size} records of log {self.name!r}, "
                f"the database holds {size}; restore the missing records first"
            )
        if anchored_size and merkle.root(leaves[:anchored_size]) != anchored_root:
            raise AnchoredRootMismatch(
                f"the first {anchored_size} records of log {self.name!r} do not match the "
                "root anchored on chain; the local log was altered"
            )
        if anchored_size == size:
            return None
        root = merkle.root(leaves)
        if anchored_size == 0:
            receipt = anchor_client.create_log(name, size, root)
        else:
            receipt = anchor_client.checkpoint(log_id, size, root)
        checkpoint = Checkpoint(log_id, size, root, bytes(receipt["transactionHash"]))
        self.db.run(
            lambda session: session.add(
                _CheckpointRow(
                    log=self.name,
                    log_id=log_id,
                    tree_size=size,
                    root=root,
                    tx_hash=checkpoint.tx_hash,
                    recorded_at=utc_now(),
                )
            ),
            write=True,
        )
        return checkpoint


# --- the regulator's side --------------------------------------------------------------


def log_root(records: Sequence[QueryRecord]) -> bytes:
    """RFC 9162 root over records, recomputed from their canonical encoding."""
    return merkle.root([r.leaf_hash() for r in records])


def count_per_org_day(records: Iterable[QueryRecord]) -> dict[tuple[str, date], int]:
    """Queries per ``(querier_org, UTC day)``: what the regulator reads from a relay log.

    Provider logs count under org ``""`` (providers do not know who asked).
    """
    counts: Counter[tuple[str, date]] = Counter()
    for record in records:
        day = datetime.fromtimestamp(record.time_bucket, UTC).date()
        counts[(record.querier_org, day)] += 1
    return dict(counts)


def _check_checkpoint(checkpoint: Checkpoint, what: str) -> None:
    size, root = checkpoint.tree_size, checkpoint.root
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidLogInput(f"{what}.tree_size must be a positive integer, got {size!r}")
    if not isinstance(root, bytes) or len(root) != 32:
        raise InvalidLogInput(f"{what}.root must be 32 bytes")


def verify_log(
    records: Sequence[QueryRecord], checkpoint: Checkpoint, previous: Checkpoint | None = None
) -> None:
    """Check the records a log owner served against an anchored checkpoint.

    Raises :class:`LogTruncated` if fewer records than the checkpoint covers,
    :class:`LogRootMismatch` if the first ``tree_size`` records do not hash to its root
    (a record altered, dropped, inserted or reordered), and, given the ``previous``
    checkpoint of the same log, :class:`InconsistentCheckpoints` unless it is a prefix
    of this one (RFC 9162 consistency proof, built from the records and checked against
    both anchored roots). Extra records after ``tree_size`` are not yet anchored and are
    not judged.
    """
    _check_checkpoint(checkpoint, "checkpoint")
    size = checkpoint.tree_size
    if len(records) < size:
        raise LogTruncated(
            f"the checkpoint covers {size} records, the log served has {len(records)}"
        )
    leaves = [r.leaf_hash() for r in records[:size]]
    if not hmac.compare_digest(merkle.root(leaves), checkpoint.root):
        raise LogRootMismatch(
            f"the first {size} records do not hash to the anchored root 0x{checkpoint.root.hex()}"
        )
    if previous is None:
        return
    _check_checkpoint(previous, "previous")
    if previous.tree_size > size:
        raise InconsistentCheckpoints(
            f"previous checkpoint covers {previous.tree_size} records, later one only {size}"
        )
    proof = merkle.consistency_proof(leaves, previous.tree_size)
    verify_consistency(previous, checkpoint, proof)


def verify_consistency(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Raise :class:`InconsistentCheckpoints` unless ``proof`` shows ``old`` is a prefix
    of ``new`` (RFC 9162 §2.1.4.2): for a regulator that holds no records."""
    _check_checkpoint(old, "old")
    _check_checkpoint(new, "new")
    if not merkle.verify_consistency(old.tree_size, new.tree_size, old.root, new.root, proof):
        raise InconsistentCheckpoints(
            f"the checkpoint of {new.tree_size} records does not extend the earlier one of "
            f"{old.tree_size} records: the log's history was rewritten"
        )


def verify_inclusion(
    record: QueryRecord, seq: int, checkpoint: Checkpoint, proof: Sequence[bytes]
) -> None:
    """Raise :class:`LogRootMismatch` unless ``record`` is leaf ``seq`` under ``checkpoint``."""
    _check_checkpoint(checkpoint, "checkpoint")
    if not merkle.verify_inclusion(
        record.leaf_hash(), seq, checkpoint.tree_size, proof, checkpoint.root
    ):
        raise LogRootMismatch(
            f"record {seq} is not included in the checkpoint of {checkpoint.tree_size} records"
        )
