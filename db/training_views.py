"""Training jobs as clients see them: one view for GET /v1/training-jobs/{id} and its list, and the list query."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, defer

from imagebatch.db.cursors import JobCursor, decode_cursor, encode_cursor
from imagebatch.db.models import TrainingJob, as_utc
from imagebatch.db.views import Timestamps

_STAMPS = ("created", "queued", "running", "completed", "failed", "cancelling", "cancelled")


class Epoch(BaseModel):
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


class Best(BaseModel):
    epoch: int
    val_accuracy: float


class ModelName(BaseModel):
    name: str
    version: int


class TrainingLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    model: str | None = Field(description="GET /v1/models/{name}:{version} once registered")


class TrainingJobView(BaseModel):
    """GET /v1/training-jobs/{id} and each item of GET /v1/training-jobs."""

    id: str
    state: str = Field(description="queued -> running -> completed | failed; cancelling -> cancelled")
    name: str = Field(description="the model's name")
    base_model: str
    mode: str
    options: dict[str, Any] = Field(description="every training option, defaults filled in")
    progress: float = Field(description="finished epochs / epochs (1.0 once completed)")
    epochs: list[Epoch] = Field(description="one entry per finished epoch, in order, filled in as each ends")
    best: Best | None = Field(description="the epoch with the best validation accuracy so far")
    image_count: int = Field(description="images received (the data step may skip unusable ones)")
    classes: list[str]
    dataset: dict[str, Any] | None = Field(description="the data step's report: counts, skipped files, warnings")
    record: dict[str, Any] | None = Field(description="hyper-parameters, seed, split, dataset SHA-256, versions")
    model: ModelName | None = Field(description="the registered model, once completed")
    error: str | None
    skipped: list[dict[str, str]] = Field(description="archive members that were not images, and why")
    attempts: int = Field(description="claims by workers: more than 1 means it was resumed")
    heartbeat_at: datetime | None
    timestamps: Timestamps
    links: TrainingLinks

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class TrainingJobPage(BaseModel):
    items: list[TrainingJobView]
    next_cursor: str | None


def training_job_view(job: TrainingJob, full: bool = True) -> TrainingJobView:
    """The view of one job; `full=False` (lists) leaves out the dataset report and the training record."""
    model = ModelName(name=job.name, version=job.model_version) if job.model_version is not None else None
    return TrainingJobView(
        id=job.id,
        state=job.state,
        name=job.name,
        base_model=job.base_model,
        mode=job.mode,
        options=job.options,
        progress=job.progress,
        epochs=job.epochs or [],
        best=Best.model_validate(job.best) if job.best else None,
        image_count=job.image_count,
        classes=job.classes or [],
        dataset=job.dataset if full else None,
        record=job.record if full else None,
        model=model,
        error=job.error,
        skipped=job.skipped or [],
        attempts=job.attempts,
        heartbeat_at=as_utc(job.heartbeat_at),
        timestamps=Timestamps.model_validate({name: as_utc(getattr(job, f"{name}_at")) for name in _STAMPS}),
        links=TrainingLinks.model_validate(
            {
                "self": f"/v1/training-jobs/{job.id}",
                "model": f"/v1/models/{model.name}:{model.version}" if model else None,
            }
        ),
    )


def list_training_jobs(
    session: Session, *, tenant: str | None, state: str | None, limit: int, cursor: str | None
) -> tuple[list[TrainingJob], str | None]:
    """Newest first, keyset-paginated on (created_at, id); the heavy record and report are left out."""
    query = select(TrainingJob).options(defer(TrainingJob.record), defer(TrainingJob.dataset))
    if tenant is not None:
        query = query.where(TrainingJob.tenant == tenant)
    if state:
        query = query.where(TrainingJob.state == state)
    if cursor:
        after = decode_cursor(cursor, JobCursor)
        query = query.where(
            or_(TrainingJob.created_at < after.c, and_(TrainingJob.created_at == after.c, TrainingJob.id < after.i))
        )
    jobs = list(session.scalars(query.order_by(TrainingJob.created_at.desc(), TrainingJob.id.desc()).limit(limit + 1)))
    if len(jobs) <= limit:
        return jobs, None
    jobs = jobs[:limit]
    return jobs, encode_cursor(JobCursor(c=as_utc(jobs[-1].created_at), i=jobs[-1].id))
