"""Task verifications run through the auditor's API (``auditor.api.routes.verification``).

Not a chain table: the indexer's rollback never touches it. Frozen here as first
released; later changes are new revisions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=42), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("read_up_to_block", sa.BigInteger(), nullable=False),
        sa.Column("read_up_to_hash", sa.LargeBinary(), nullable=False),
        sa.Column("report_digest", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=True),
        sa.Column("prov", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_verifications_task", "verifications", ["task_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_verifications_task", table_name="verifications")
    op.drop_table("verifications")
