"""artefacts: model exports (ONNX, TorchScript) and Grad-CAM maps built by workers on request

Revision ID: 0009_tools
Revises: 0008_merge
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_tools"
down_revision = "0008_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artefacts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("cache_key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False, server_default=""),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("base_model", sa.String(32), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("image_index", sa.Integer(), nullable=True),
        sa.Column("class_index", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("storage_key", sa.String(300), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("cache_key", name="uq_artefacts_cache_key"),
    )
    op.create_index("ix_artefacts_job_id", "artefacts", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_artefacts_job_id", table_name="artefacts")
    op.drop_table("artefacts")
