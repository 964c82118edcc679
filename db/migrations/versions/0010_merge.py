"""merge the idempotency-fingerprint and model-tools artefact heads

Revision ID: 0010_merge
Revises: 0009_admission, 0009_tools
"""

revision = "0010_merge"
down_revision = ("0009_admission", "0009_tools")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
