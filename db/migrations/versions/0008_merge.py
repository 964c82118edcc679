"""merge the thumbnails/decode and custom-models heads

Revision ID: 0008_merge
Revises: 0007_thumbs, 0007_custom
"""

revision = "0008_merge"
down_revision = ("0007_thumbs", "0007_custom")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
