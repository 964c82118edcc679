"""custom models: training jobs, the model registry, evaluation jobs (job kind, true labels, model versions)

Revision ID: 0007_custom
Revises: 0006_claims
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_custom"
down_revision = "0006_claims"
branch_labels = None
depends_on = None

_STAMPS = ("created_at", "queued_at", "running_at", "completed_at", "failed_at", "cancelling_at", "cancelled_at")


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=True, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("base_model", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("progress", sa.Float(), nullable=False, server_default="0"),
        sa.Column("epochs", sa.JSON(), nullable=False),
        sa.Column("best", sa.JSON(), nullable=True),
        sa.Column("dataset", sa.JSON(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("skipped", sa.JSON(), nullable=True),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("data_prefix", sa.String(200), nullable=False),
        sa.Column("checkpoint_key", sa.String(300), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        *(sa.Column(name, sa.DateTime(timezone=True), nullable=name != "created_at") for name in _STAMPS),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False, server_default=""),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("base_model", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("weights_key", sa.String(300), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("training_job_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant", "name", "version", name="uq_models_tenant_name_version"),
    )
    op.create_index("ix_models_tenant_name", "models", ["tenant", "name"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="classify"))
        batch_op.add_column(sa.Column("custom_model", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("model_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("true_label", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("true_label")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("model_version")
        batch_op.drop_column("custom_model")
        batch_op.drop_column("kind")
    op.drop_index("ix_models_tenant_name", table_name="models")
    op.drop_table("models")
    op.drop_table("training_jobs")
