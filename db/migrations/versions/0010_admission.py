"""idempotency fingerprints: what a submission with an Idempotency-Key asked for

Revision ID: 0010_admission
Revises: 0009_tools
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_admission"
down_revision = "0009_tools"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs from before have none: a retry of theirs is answered with the job, as it was then.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("idempotency_fingerprint")
