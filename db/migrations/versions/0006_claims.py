"""claim owners: which delivery holds an image row, when a webhook delivery was claimed

Revision ID: 0006_claims
Revises: 0005_merge
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_claims"
down_revision = "0005_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_claimed_at", sa.DateTime(timezone=True), nullable=True))
    # Deliveries in flight during the upgrade count as claimed now: retried only after the lease.
    op.execute("UPDATE jobs SET webhook_claimed_at = CURRENT_TIMESTAMP WHERE webhook_state = 'sending'")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("webhook_claimed_at")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
