"""worker liveness: a heartbeat row per worker process, the worker holding each running image row

Revision ID: 0011_liveness
Revises: 0010_admission
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_liveness"
down_revision = "0010_admission"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workers_seen_at", "workers", ["seen_at"])
    # Rows claimed before the upgrade name no worker: only CHUNK_DEADLINE requeues them.
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_worker", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("claimed_worker")
    op.drop_index("ix_workers_seen_at", table_name="workers")
    op.drop_table("workers")
