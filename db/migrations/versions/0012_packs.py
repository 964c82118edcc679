"""rendition packs: where an image's thumbnail and preview lie inside its chunk's one stored object

Revision ID: 0012_packs
Revises: 0011_liveness
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_packs"
down_revision = "0011_liveness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Images processed before keep NULL: their renditions stay one object each, where the API still looks.
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renditions", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("renditions")
