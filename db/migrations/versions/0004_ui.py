"""completion webhooks: callback URL and delivery state on jobs

Revision ID: 0004_ui
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_ui"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("webhook_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_delivered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in ("webhook_delivered_at", "webhook_error", "webhook_attempts", "webhook_state", "callback_url"):
            batch_op.drop_column(name)
