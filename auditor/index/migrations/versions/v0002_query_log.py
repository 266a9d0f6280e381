"""The regulators' query log and its AnchorLog checkpoints (``auditor.querylog``).

Not chain tables: the indexer's rollback never touches them. Frozen here as first
released; later changes are new revisions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "query_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("org_id", sa.LargeBinary(), nullable=False),
        sa.Column("leaf", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_query_log_org_at", "query_log", ["org_id", "at"], unique=False)
    op.create_table(
        "query_log_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )


def downgrade() -> None:
    op.drop_table("query_log_checkpoints")
    op.drop_index("ix_query_log_org_at", table_name="query_log")
    op.drop_table("query_log")
