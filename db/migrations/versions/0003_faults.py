"""idempotency keys, enqueue marks and chunk claim bookkeeping

Revision ID: 0003_faults
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_faults"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_jobs_idempotency_key", ["idempotency_key"])
    # Jobs created before this migration were enqueued by the API that created them.
    op.execute("UPDATE jobs SET enqueued_at = queued_at")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("attempts")
        batch_op.drop_column("claimed_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_jobs_idempotency_key", type_="unique")
        batch_op.drop_column("enqueued_at")
        batch_op.drop_column("idempotency_key")
