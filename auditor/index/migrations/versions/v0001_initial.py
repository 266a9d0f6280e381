"""The initial index schema: bookkeeping, blocks, events and the typed tables.

Frozen here as it was first released: later schema changes are new revisions, never
edits of this one (tests/auditor/index compares the migrated database with
``auditor.index.schema`` so the two cannot drift apart).

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "algorithms",
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("proposer_org", sa.LargeBinary(), nullable=False),
        sa.Column("proposal_id", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_algorithms_digest", "algorithms", ["digest"], unique=False)
    op.create_index("ix_algorithms_kind", "algorithms", ["kind"], unique=False)
    op.create_table(
        "anchor_logs",
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("owner", sa.LargeBinary(), nullable=False),
        sa.Column("owner_org", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_anchor_logs_log_id", "anchor_logs", ["log_id"], unique=False)
    op.create_index("ix_anchor_logs_owner_org", "anchor_logs", ["owner_org"], unique=False)
    op.create_table(
        "blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("parent_hash", sa.LargeBinary(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("writer", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_checkpoints_log", "checkpoints", ["log_id", "tree_size"], unique=False)
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("merkle_root", sa.LargeBinary(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("schema_digest", sa.LargeBinary(), nullable=False),
        sa.Column("classification", sa.Integer(), nullable=False),
        sa.Column("metadata_uri", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index(
        "ix_dataset_versions_dataset", "dataset_versions", ["dataset_id", "version"], unique=False
    )
    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.LargeBinary(), nullable=False),
        sa.Column("owner_org", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_datasets_dataset_id", "datasets", ["dataset_id"], unique=False)
    op.create_index("ix_datasets_owner_org", "datasets", ["owner_org"], unique=False)
    op.create_table(
        "events",
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("address", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
        sa.UniqueConstraint("block_hash", "log_index", name="uq_events_block_hash_log_index"),
    )
    op.create_index("ix_events_contract_name", "events", ["contract", "name"], unique=False)
    op.create_index("ix_events_tx_hash", "events", ["tx_hash"], unique=False)
    op.create_table(
        "grant_uses",
        sa.Column("grant_id", sa.LargeBinary(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("max_uses", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_grant_uses_grant", "grant_uses", ["grant_id", "block_number"], unique=False)
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.LargeBinary(), nullable=False),
        sa.Column("dataset_id", sa.LargeBinary(), nullable=False),
        sa.Column("grantee_org", sa.LargeBinary(), nullable=False),
        sa.Column("grantor_org", sa.LargeBinary(), nullable=False),
        sa.Column("algorithm_digest", sa.LargeBinary(), nullable=False),
        sa.Column("purpose", sa.LargeBinary(), nullable=False),
        sa.Column("not_after", sa.BigInteger(), nullable=False),
        sa.Column("max_uses", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_grants_dataset", "grants", ["dataset_id"], unique=False)
    op.create_index("ix_grants_grant_id", "grants", ["grant_id"], unique=False)
    op.create_index("ix_grants_grantee", "grants", ["grantee_org"], unique=False)
    op.create_index("ix_grants_purpose", "grants", ["purpose"], unique=False)
    op.create_table(
        "index_reorgs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("detected_at", sa.Float(), nullable=False),
        sa.Column("old_cursor", sa.BigInteger(), nullable=False),
        sa.Column("fork_block", sa.BigInteger(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "index_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("deployment_digest", sa.LargeBinary(), nullable=False),
        sa.Column("first_block", sa.BigInteger(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("cursor_hash", sa.LargeBinary(), nullable=True),
        sa.Column("head_seen", sa.BigInteger(), nullable=True),
        sa.Column("head_seen_at", sa.Float(), nullable=True),
        sa.Column("confirmations", sa.Integer(), nullable=True),
        sa.Column("reorgs_seen", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "node_records",
        sa.Column("node", sa.LargeBinary(), nullable=False),
        sa.Column("org_id", sa.LargeBinary(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("tls_cert_sha256", sa.LargeBinary(), nullable=True),
        sa.Column("tee_measurement", sa.LargeBinary(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_node_records_node", "node_records", ["node", "block_number"], unique=False)
    op.create_index("ix_node_records_org", "node_records", ["org_id", "block_number"], unique=False)
    op.create_table(
        "organisations",
        sa.Column("org_id", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("roles", sa.Integer(), nullable=False),
        sa.Column("admin", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_organisations_org_id", "organisations", ["org_id"], unique=False)
    op.create_table(
        "status_history",
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.LargeBinary(), nullable=True),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index(
        "ix_status_history_entity",
        "status_history",
        ["entity", "entity_id", "block_number", "log_index"],
        unique=False,
    )
    op.create_index(
        "ix_status_history_status",
        "status_history",
        ["entity", "status", "block_time"],
        unique=False,
    )
    op.create_table(
        "task_participants",
        sa.Column("task_id", sa.LargeBinary(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("node", sa.LargeBinary(), nullable=False),
        sa.Column("dataset_id", sa.LargeBinary(), nullable=False),
        sa.Column("dataset_version", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", "position"),
    )
    op.create_index(
        "ix_task_participants_dataset", "task_participants", ["dataset_id"], unique=False
    )
    op.create_index("ix_task_participants_grant", "task_participants", ["grant_id"], unique=False)
    op.create_index("ix_task_participants_node", "task_participants", ["node"], unique=False)
    op.create_index("ix_task_participants_task", "task_participants", ["task_id"], unique=False)
    op.create_table(
        "task_steps",
        sa.Column("task_id", sa.LargeBinary(), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("actor_node", sa.LargeBinary(), nullable=True),
        sa.Column("actor_org", sa.LargeBinary(), nullable=True),
        sa.Column("grant_id", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=True),
        sa.Column("evidence_root", sa.LargeBinary(), nullable=True),
        sa.Column("round", sa.BigInteger(), nullable=True),
        sa.Column("reason_code", sa.Integer(), nullable=True),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index(
        "ix_task_steps_reason", "task_steps", ["step", "reason_code", "block_time"], unique=False
    )
    op.create_index(
        "ix_task_steps_trail", "task_steps", ["task_id", "block_number", "log_index"], unique=False
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.LargeBinary(), nullable=False),
        sa.Column("creator_org", sa.LargeBinary(), nullable=False),
        sa.Column("algorithm_digest", sa.LargeBinary(), nullable=False),
        sa.Column("params_digest", sa.LargeBinary(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("participant_count", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index(
        "ix_tasks_algorithm_time", "tasks", ["algorithm_digest", "block_time"], unique=False
    )
    op.create_index("ix_tasks_creator_time", "tasks", ["creator_org", "block_time"], unique=False)
    op.create_index("ix_tasks_task_id", "tasks", ["task_id"], unique=False)
    op.create_index("ix_tasks_time", "tasks", ["block_time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tasks_time", table_name="tasks")
    op.drop_index("ix_tasks_task_id", table_name="tasks")
    op.drop_index("ix_tasks_creator_time", table_name="tasks")
    op.drop_index("ix_tasks_algorithm_time", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index("ix_task_steps_trail", table_name="task_steps")
    op.drop_index("ix_task_steps_reason", table_name="task_steps")
    op.drop_table("task_steps")
    op.drop_index("ix_task_participants_task", table_name="task_participants")
    op.drop_index("ix_task_participants_node", table_name="task_participants")
    op.drop_index("ix_task_participants_grant", table_name="task_participants")
    op.drop_index("ix_task_participants_dataset", table_name="task_participants")
    op.drop_table("task_participants")
    op.drop_index("ix_status_history_status", table_name="status_history")
    op.drop_index("ix_status_history_entity", table_name="status_history")
    op.drop_table("status_history")
    op.drop_index("ix_organisations_org_id", table_name="organisations")
    op.drop_table("organisations")
    op.drop_index("ix_node_records_org", table_name="node_records")
    op.drop_index("ix_node_records_node", table_name="node_records")
    op.drop_table("node_records")
    op.drop_table("index_state")
    op.drop_table("index_reorgs")
    op.drop_index("ix_grants_purpose", table_name="grants")
    op.drop_index("ix_grants_grantee", table_name="grants")
    op.drop_index("ix_grants_grant_id", table_name="grants")
    op.drop_index("ix_grants_dataset", table_name="grants")
    op.drop_table("grants")
    op.drop_index("ix_grant_uses_grant", table_name="grant_uses")
    op.drop_table("grant_uses")
    op.drop_index("ix_events_tx_hash", table_name="events")
    op.drop_index("ix_events_contract_name", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_datasets_owner_org", table_name="datasets")
    op.drop_index("ix_datasets_dataset_id", table_name="datasets")
    op.drop_table("datasets")
    op.drop_index("ix_dataset_versions_dataset", table_name="dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_index("ix_checkpoints_log", table_name="checkpoints")
    op.drop_table("checkpoints")
    op.drop_table("blocks")
    op.drop_index("ix_anchor_logs_owner_org", table_name="anchor_logs")
    op.drop_index("ix_anchor_logs_log_id", table_name="anchor_logs")
    op.drop_table("anchor_logs")
    op.drop_index("ix_algorithms_kind", table_name="algorithms")
    op.drop_index("ix_algorithms_digest", table_name="algorithms")
    op.drop_table("algorithms")
