"""merge auth, faults and ui heads

Revision ID: 0005_merge
Revises: 0002_auth, 0003_faults, 0004_ui
"""

revision = "0005_merge"
down_revision = ("0002_auth", "0003_faults", "0004_ui")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
