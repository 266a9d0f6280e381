"""The indexer's SQL tables: a generic event log plus typed tables shaped for the API.

Every row that comes from the chain carries the ``block_number`` (and ``log_index``) of
the event it was derived from, and no row is ever updated by a later event: current
state (an organisation's status, a task's status, a grant's remaining uses) is the
latest row of a history table. That is what makes a reorg cheap and exact: rolling back
to a fork point is ``DELETE ... WHERE block_number > fork`` on every table, in one
transaction, with nothing to recompute.

Encodings: ids, hashes and addresses are raw bytes (``LargeBinary``: 32 bytes for ids
and hashes, 20 for addresses), block times are Unix seconds. ``uint64`` values that can
exceed a signed 64-bit column (a grant's ``notAfter``, a deadline, a tree size) are
saturated at 2**63 - 1 in the typed columns, which keeps every time comparison exact;
the exact value stays in ``events.args``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: Largest value a typed integer column holds (PostgreSQL BIGINT is signed).
INT64_MAX = 2**63 - 1


def _position() -> list[Column[int]]:
    """Where an event sits in the chain: the rollback and ordering key of every table."""
    return [
        Column("block_number", BigInteger, nullable=False),
        Column("log_index", Integer, nullable=False),
        Column("block_time", BigInteger, nullable=False),
    ]


# --- the indexer's own bookkeeping ---------------------------------------------------

index_state = Table(
    "index_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("chain_id", BigInteger, nullable=False),
    Column("deployment_digest", LargeBinary, nullable=False),
    Column("first_block", BigInteger, nullable=False),
    # Every block up to and including `cursor` is indexed; -1 / first_block - 1 = none yet.
    Column("cursor", BigInteger, nullable=False),
    Column("cursor_hash", LargeBinary, nullable=True),
    Column("head_seen", BigInteger, nullable=True),
    Column("head_seen_at", Float, nullable=True),
    Column("confirmations", Integer, nullable=True),  # None: the chain's `finalized` tag
    Column("reorgs_seen", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

reorgs = Table(
    "index_reorgs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("detected_at", Float, nullable=False),
    Column("old_cursor", BigInteger, nullable=False),
    Column("fork_block", BigInteger, nullable=False),
    Column("depth", Integer, nullable=False),
)

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False, unique=True),
    Column("parent_hash", LargeBinary, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

# --- every event, as decoded ----------------------------------------------------------

events = Table(
    "events",
    metadata,
    *_position(),
    Column("block_hash", LargeBinary, nullable=False),
    Column("tx_hash", LargeBinary, nullable=False),
    Column("tx_index", Integer, nullable=False),
    Column("contract", String(32), nullable=False),
    Column("address", LargeBinary, nullable=False),
    Column("name", String(64), nullable=False),
    Column("args", Text, nullable=False),  # RFC 8785 JSON, see decode.json_args
    PrimaryKeyConstraint("block_number", "log_index"),
    UniqueConstraint("block_hash", "log_index", name="uq_events_block_hash_log_index"),
    Index("ix_events_contract_name", "contract", "name"),
    Index("ix_events_tx_hash", "tx_hash"),
)

# --- typed tables ---------------------------------------------------------------------

organisations = Table(
    "organisations",
    metadata,
    Column("org_id", LargeBinary, nullable=False),
    Column("name", Text, nullable=False),
    Column("roles", Integer, nullable=False),
    Column("admin", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_organisations_org_id", "org_id"),
)

#: One row per status change of an organisation, node, algorithm, dataset, grant or task.
status_history = Table(
    "status_history",
    metadata,
    Column("entity", String(16), nullable=False),
    Column("entity_id", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("actor", LargeBinary, nullable=True),  # the node or org the event names, if any
    Column("tx_hash", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_status_history_entity", "entity", "entity_id", "block_number", "log_index"),
    Index("ix_status_history_status", "entity", "status", "block_time"),
)

node_records = Table(
    "node_records",
    metadata,
    Column("node", LargeBinary, nullable=False),
    Column("org_id", LargeBinary, nullable=False),
    Column("change", String(16), nullable=False),  # registered / updated / revoked
    Column("endpoint", Text, nullable=True),
    Column("tls_cert_sha256", LargeBinary, nullable=True),
    Column("tee_measurement", LargeBinary, nullable=True),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_node_records_node", "node", "block_number"),
    Index("ix_node_records_org", "org_id", "block_number"),
)

algorithms = Table(
    "algorithms",
    metadata,
    Column("digest", LargeBinary, nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("kind", Integer, nullable=False),
    Column("proposer_org", LargeBinary, nullable=False),
    Column("proposal_id", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_algorithms_digest", "digest"),
    Index("ix_algorithms_kind", "kind"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("dataset_id", LargeBinary, nullable=False),
    Column("owner_org", LargeBinary, nullable=False),
    Column("name", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_datasets_dataset_id", "dataset_id"),
    Index("ix_datasets_owner_org", "owner_org"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("dataset_id", LargeBinary, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("merkle_root", LargeBinary, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("schema_digest", LargeBinary, nullable=False),
    Column("classification", Integer, nullable=False),
    Column("metadata_uri", Text, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_dataset_versions_dataset", "dataset_id", "version"),
)

grants = Table(
    "grants",
    metadata,
    Column("grant_id", LargeBinary, nullable=False),
    Column("dataset_id", LargeBinary, nullable=False),
    Column("grantee_org", LargeBinary, nullable=False),
    Column("grantor_org", LargeBinary, nullable=False),
    Column("algorithm_digest", LargeBinary, nullable=False),  # 32 zero bytes: any approved
    Column("purpose", LargeBinary, nullable=False),
    Column("not_after", BigInteger, nullable=False),
    Column("max_uses", BigInteger, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_grants_grant_id", "grant_id"),
    Index("ix_grants_dataset", "dataset_id"),
    Index("ix_grants_grantee", "grantee_org"),
    Index("ix_grants_purpose", "purpose"),
)

grant_uses = Table(
    "grant_uses",
    metadata,
    Column("grant_id", LargeBinary, nullable=False),
    Column("used", BigInteger, nullable=False),  # uses consumed so far, this one included
    Column("max_uses", BigInteger, nullable=False),
    Column("tx_hash", LargeBinary, nullable=False),  # the TaskAccepted of the same tx
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_grant_uses_grant", "grant_id", "block_number"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("task_id", LargeBinary, nullable=False),
    Column("creator_org", LargeBinary, nullable=False),
    Column("algorithm_digest", LargeBinary, nullable=False),
    Column("params_digest", LargeBinary, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("participant_count", Integer, nullable=False),
    Column("tx_hash", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_tasks_task_id", "task_id"),
    Index("ix_tasks_creator_time", "creator_org", "block_time"),
    Index("ix_tasks_algorithm_time", "algorithm_digest", "block_time"),
    Index("ix_tasks_time", "block_time"),
)

task_participants = Table(
    "task_participants",
    metadata,
    Column("task_id", LargeBinary, nullable=False),
    Column("position", Integer, nullable=False),
    Column("node", LargeBinary, nullable=False),
    Column("dataset_id", LargeBinary, nullable=False),
    Column("dataset_version", BigInteger, nullable=False),
    Column("grant_id", LargeBinary, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("log_index", Integer, nullable=False),
    PrimaryKeyConstraint("block_number", "log_index", "position"),
    Index("ix_task_participants_task", "task_id"),
    Index("ix_task_participants_node", "node"),
    Index("ix_task_participants_dataset", "dataset_id"),
    Index("ix_task_participants_grant", "grant_id"),
)

#: A task's trail: every TaskRegistry event naming it, in chain order.
task_steps = Table(
    "task_steps",
    metadata,
    Column("task_id", LargeBinary, nullable=False),
    Column("step", String(32), nullable=False),  # the event name
    Column("actor_node", LargeBinary, nullable=True),
    Column("actor_org", LargeBinary, nullable=True),
    Column("grant_id", LargeBinary, nullable=True),
    Column("digest", LargeBinary, nullable=True),  # commitment / checkpoint / result digest
    Column("evidence_root", LargeBinary, nullable=True),
    Column("round", BigInteger, nullable=True),
    Column("reason_code", Integer, nullable=True),
    Column("tx_hash", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_task_steps_trail", "task_id", "block_number", "log_index"),
    Index("ix_task_steps_reason", "step", "reason_code", "block_time"),
)

anchor_logs = Table(
    "anchor_logs",
    metadata,
    Column("log_id", LargeBinary, nullable=False),
    Column("owner", LargeBinary, nullable=False),
    Column("owner_org", LargeBinary, nullable=False),
    Column("name", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_anchor_logs_log_id", "log_id"),
    Index("ix_anchor_logs_owner_org", "owner_org"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("log_id", LargeBinary, nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("writer", LargeBinary, nullable=False),
    Column("tx_hash", LargeBinary, nullable=False),
    *_position(),
    PrimaryKeyConstraint("block_number", "log_index"),
    Index("ix_checkpoints_log", "log_id", "tree_size"),
)

#: Tables whose rows come from the chain, in insertion order; rollback deletes from all.
CHAIN_TABLES: tuple[Table, ...] = (
    blocks,
    events,
    organisations,
    status_history,
    node_records,
    algorithms,
    datasets,
    dataset_versions,
    grants,
    grant_uses,
    tasks,
    task_participants,
    task_steps,
    anchor_logs,
    checkpoints,
)

# --- the auditor's own records (not from the chain: never rolled back) -----------------

#: The regulators' query log (``auditor.querylog``): one row per logged request, in
#: order. ``leaf`` is the RFC 8785 JSON whose ``leaf_hash`` is the Merkle leaf; the other
#: columns repeat some of its fields for filtering. Append-only: no row is ever updated.
query_log = Table(
    "query_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # 0-based leaf index
    Column("at", BigInteger, nullable=False),
    Column("address", String(42), nullable=False),
    Column("org_id", LargeBinary, nullable=False),
    Column("leaf", Text, nullable=False),
    Index("ix_query_log_org_at", "org_id", "at"),
)

#: The query log's checkpoints sent to ``AnchorLog`` by ``auditor.querylog.Checkpointer``.
query_log_checkpoints = Table(
    "query_log_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("log_id", LargeBinary, nullable=False),
    Column("tx_hash", LargeBinary, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

#: Task verifications run through the API (``auditor.api.routes.verification``): each
#: run is kept (the latest is served), with the DSSE envelope's exact served bytes, so a
#: report digest handed out once can always be matched again. Never rolled back: a
#: verification records what the chain said up to ``read_up_to_block`` at the time.
verifications = Table(
    "verifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("requested_by", String(42), nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("read_up_to_block", BigInteger, nullable=False),
    Column("read_up_to_hash", LargeBinary, nullable=False),
    Column("report_digest", Text, nullable=True),
    Column("result", Text, nullable=False),  # `Verification.to_json()` as JSON
    Column("envelope", LargeBinary, nullable=True),  # RFC 8785 bytes, as served
    Column("prov", Text, nullable=True),
    Index("ix_verifications_task", "task_id", "id"),
)
