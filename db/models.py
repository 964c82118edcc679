"""Table models: jobs and their image rows, API keys, label sets; training jobs, the model registry, artefacts."""

import enum
from datetime import UTC, datetime
from typing import overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)
# Not final yet: active, or cancelling while its running chunks finish (its rows can still be open).
UNFINISHED_STATES = (*ACTIVE_STATES, JobState.CANCELLING.value)
FINAL_STATES = (JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value)


class JobKind(enum.StrEnum):
    CLASSIFY = "classify"
    EVALUATE = "evaluate"


class ImageStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"


# Not finished yet: waiting for a worker, or claimed by one. A job closes when none is left.
OPEN_IMAGE_STATUSES = (ImageStatus.PENDING.value, ImageStatus.RUNNING.value)


class WebhookState(enum.StrEnum):
    """A completion webhook's delivery: the outbox row is the job itself (db.lifecycle.webhooks)."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


# What a job id can be: the API makes uuid4 hex (tests use short names); Job.id is a VARCHAR(32).
# Anything else cannot name a job, and is never sent to the database (PostgreSQL refuses NUL).
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value, index=True)
    model: Mapped[str] = mapped_column(String(32))
    top_k: Mapped[int] = mapped_column(Integer)
    store_probabilities: Mapped[bool] = mapped_column(Boolean, default=False)
    precision: Mapped[str] = mapped_column(String(8))
    # Migration 0007_thumbs: the `decode` option as submitted (None: not said), and the decode mode
    # the job runs with, resolved at submission (None: a job from before; its worker resolves it).
    decode: Mapped[str | None] = mapped_column(String(8))
    decode_mode: Mapped[str | None] = mapped_column(String(8))
    total: Mapped[int] = mapped_column(Integer)
    chunk_size: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # Inputs that were not images (e.g. archive members): [{"source": ..., "reason": ...}]
    skipped: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    # What produced the results: model, weights, their SHA-256, library versions, device...
    reproducibility: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # The API key's tenant that submitted the job; None when it was created with auth off.
    tenant: Mapped[str | None] = mapped_column(String(64), index=True)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    running_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Migration 0003_faults. SHA-256 of (tenant, the client's Idempotency-Key header): a retried
    # submission finds this job instead of creating another; unique, hence per tenant.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Migration 0010_admission: SHA-256 of what that submission asked for (options, each image's
    # name, size and digest, or its URI); the same key with another body is refused (422).
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # Set once every chunk message is in the broker; a queued job without it after a grace
    # period is one whose API died mid-submission, and the sweeper enqueues it.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Completion webhook (migration 0004_ui): POSTed once when the job reaches a final state.
    callback_url: Mapped[str | None] = mapped_column(Text)
    # None (no callback), pending, sending, delivered or failed.
    webhook_state: Mapped[str | None] = mapped_column(String(16))
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    webhook_error: Mapped[str | None] = mapped_column(Text)
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Migration 0006_claims: when the delivery was claimed (pending -> sending). A delivery still
    # `sending` long after its claim belongs to a process that died, and is claimed again.
    webhook_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Migration 0007_custom. classify, or evaluate (its images carry their true label).
    kind: Mapped[str] = mapped_column(String(16), default=JobKind.CLASSIFY.value, server_default="classify")
    # A custom model's name and the version resolved at submission; `model` is then its base
    # architecture, whose queue serves the job (a worker serving resnet18 serves custom resnet18s).
    custom_model: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("job_id", "idx", name="uq_images_job_idx"),
        Index("ix_images_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    # Where the worker reads the bytes: "blob:<storage key>" for uploads, "file:<absolute
    # path>" for local paths under an allowed root, or an http(s) URL.
    location: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=ImageStatus.PENDING.value)
    error_category: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)

    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[str | None] = mapped_column(String(16))
    format: Mapped[str | None] = mapped_column(String(16))
    mean_r: Mapped[float | None] = mapped_column(Float)
    mean_g: Mapped[float | None] = mapped_column(Float)
    mean_b: Mapped[float | None] = mapped_column(Float)
    std_r: Mapped[float | None] = mapped_column(Float)
    std_g: Mapped[float | None] = mapped_column(Float)
    std_b: Mapped[float | None] = mapped_column(Float)

    top1_index: Mapped[int | None] = mapped_column(Integer)
    top1_label: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    top5_mean: Mapped[float | None] = mapped_column(Float)
    margin: Mapped[float | None] = mapped_column(Float)
    entropy: Mapped[float | None] = mapped_column(Float)
    # [{"index": i, "label": s, "probability": p}, ...] best first
    topk: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    # Little-endian float32 or float16 (Job.reproducibility records which).
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    probabilities: Mapped[bytes | None] = mapped_column(LargeBinary)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Migration 0012_packs: {"key": the chunk's rendition pack, "thumbnail": [offset, length],
    # "preview": [offset, length]} (core/renditions.py); NULL for images processed before packs.
    renditions: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # Migration 0003_faults: when a worker last claimed the row and how many times it was
    # claimed, so the sweeper can requeue chunks nobody finished and give up after a few.
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Migration 0006_claims: the delivery (Celery task id) holding the row while it is running.
    # A redelivery of that same message takes its rows back; any other message leaves them alone.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    # Migration 0011_liveness: the worker process (WorkerProcess.id) holding the row while it is
    # running; a claimant whose heartbeat stopped has its rows requeued well before CHUNK_DEADLINE.
    claimed_worker: Mapped[str | None] = mapped_column(String(64))
    # Migration 0007_custom: an evaluation image's true class (its folder name, or its label).
    true_label: Mapped[str | None] = mapped_column(String(64))


class LabelSet(Base):
    """Class labels of a weights enum, written by the worker so the API needs no torchvision."""

    __tablename__ = "label_sets"

    weights: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[list] = mapped_column(JSON)


class ApiKey(Base):
    """An API key of a tenant; only the SHA-256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TrainingJob(Base):
    """A training run: its options, state, per-epoch history, and the model it registered.

    States as a job's: queued -> running -> completed | failed, cancelling -> cancelled. Only
    db.lifecycle.training changes them. A running job is held by one delivery (`claimed_by`)
    until `lease_until`; its worker renews the lease, and a lapsed one lets another worker resume.
    """

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))  # the model's name
    base_model: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict] = mapped_column(JSON)  # core.training.TrainingOptions, as validated
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # [{epoch, train_loss, train_accuracy, val_loss, val_accuracy, seconds}], one per finished epoch.
    epochs: Mapped[list] = mapped_column(JSON, default=list)
    best: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # {epoch, val_accuracy}
    dataset: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # the data step's report
    record: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # hyper-parameters, split, hashes, versions
    error: Mapped[str | None] = mapped_column(Text)
    skipped: Mapped[list | None] = mapped_column(JSON(none_as_null=True))  # archive members that were no images
    classes: Mapped[list] = mapped_column(JSON, default=list)  # as found at submission
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    data_prefix: Mapped[str] = mapped_column(String(200))  # blob prefix: manifest.json, data/, checkpoint/
    checkpoint_key: Mapped[str | None] = mapped_column(String(300))
    model_version: Mapped[int | None] = mapped_column(Integer)  # of the model `name` it registered

    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    running_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WorkerProcess(Base):
    """A running worker process announcing itself alive (migration 0011_liveness); db.lifecycle.workers."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class RegisteredModel(Base):
    """One version of a tenant's custom model; versions count up per (tenant, name) and are never reused."""

    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("tenant", "name", "version", name="uq_models_tenant_name_version"),
        Index("ix_models_tenant_name", "tenant", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # "" when auth is off (a NULL would not make the unique constraint bite).
    tenant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    classes: Mapped[list] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)  # the best epoch's validation scores
    weights_sha256: Mapped[str] = mapped_column(String(64))
    weights_key: Mapped[str] = mapped_column(String(300))  # blob key of model.pt; model.json beside it
    meta: Mapped[dict] = mapped_column(JSON)  # the saved model's metadata (history, evaluation, record)
    training_job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Deleted versions keep their row (so their number is never handed out again); their weights go.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def registry_tenant(tenant: str | None) -> str:
    """The models table's tenant for a request's tenant (None when auth is off)."""
    return tenant or ""


class Artefact(Base):
    """A file a worker builds on request (migration 0009_tools): a model export or a Grad-CAM map.

    One row per cache key (core.artefacts): pending -> ready | failed, changed only by db.lifecycle.artefacts.
    """

    __tablename__ = "artefacts"
    __table_args__ = (UniqueConstraint("cache_key", name="uq_artefacts_cache_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cache_key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))  # export | gradcam
    format: Mapped[str] = mapped_column(String(16))  # onnx | torchscript | heatmap | overlay
    tenant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    model: Mapped[str] = mapped_column(String(100))  # "resnet18" or a custom model's "name:version"
    base_model: Mapped[str] = mapped_column(String(32))  # the architecture: its queue builds the artefact
    # A custom model's at request time; a built-in model's recorded by the worker that built the file.
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    image_index: Mapped[int | None] = mapped_column(Integer)
    class_index: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str | None] = mapped_column(String(300))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # its build task last sent
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
