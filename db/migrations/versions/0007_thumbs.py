"""decode mode per job: the option as submitted and the mode the job runs with

Revision ID: 0007_thumbs
Revises: 0006_claims
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_thumbs"
down_revision = "0006_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs from before keep NULL in both: their workers resolve the mode as they always did.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decode", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("decode_mode", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("decode_mode")
        batch_op.drop_column("decode")
