"""The job as clients see it: one model and one builder for the API's responses and webhook payloads."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagebatch.db.models import FINAL_STATES, OPEN_IMAGE_STATUSES, Image, ImageStatus, Job, TrainingJob, as_utc

_STAMPS = ("created", "queued", "running", "completed", "failed", "cancelling", "cancelled")


class Counts(BaseModel):
    total: int
    succeeded: int
    failed: int
    pending: int
    cancelled: int


class Timestamps(BaseModel):
    created: datetime | None
    queued: datetime | None
    running: datetime | None
    completed: datetime | None
    failed: datetime | None
    cancelling: datetime | None
    cancelled: datetime | None


class Links(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # `self` is a reserved-looking name in Python, so the attribute carries an alias.
    self_: str = Field(alias="self")
    results: str
    csv: str


class Skipped(BaseModel):
    source: str
    reason: str


class WebhookView(BaseModel):
    url: str
    state: str | None = Field(description="pending, sending, delivered or failed")
    attempts: int
    error: str | None
    delivered_at: datetime | None


class JobView(BaseModel):
    """GET /v1/jobs/{id}, every item of GET /v1/jobs, and the `job` of a webhook payload."""

    id: str
    state: str
    kind: str = Field(description="classify, or evaluate (an evaluation: GET /v1/evaluations/{id} adds its metrics)")
    model: str = Field(description="the model as resolved at submission: a built-in name or a custom model's name")
    model_version: int | None = Field(description="the custom model's version used; null for a built-in model")
    base_model: str = Field(description="the architecture: the built-in model, or the custom model's base")
    top_k: int
    store_probabilities: bool
    precision: str
    decode: str | None = Field(
        description="decode mode the job runs with: fast or exact (its `decode` option, or the default for it)"
    )
    counts: Counts
    progress: float = Field(description="(succeeded + failed + cancelled) / total")
    images_per_second: float | None
    eta_seconds: float | None
    timestamps: Timestamps
    error: str | None
    skipped: list[Skipped]
    reproducibility: dict[str, Any] | None
    links: Links
    # Present when the job has a callback URL.
    webhook: WebhookView | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON document, exactly as the API serialises it (aliases, ISO times)."""
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class JobStats:
    counts: dict[str, int]
    last_processed_at: datetime | None


def counts_from_statuses(by_status: dict[str, int]) -> dict[str, int]:
    """Job counts (total, succeeded, failed, pending = not finished, cancelled) from rows per status."""
    return {
        "total": sum(by_status.values()),
        "succeeded": by_status.get(ImageStatus.OK.value, 0),
        "failed": by_status.get(ImageStatus.ERROR.value, 0),
        "pending": sum(by_status.get(s, 0) for s in OPEN_IMAGE_STATUSES),
        "cancelled": by_status.get(ImageStatus.CANCELLED.value, 0),
    }


def job_stats(session: Session, job_ids: Sequence[str]) -> dict[str, JobStats]:
    """Counts, derived from the rows so they cannot drift, and the last processing time, for
    many jobs in one grouped query (no N+1)."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(Image.job_id, Image.status, func.count(), func.max(Image.processed_at))
        .where(Image.job_id.in_(job_ids))
        .group_by(Image.job_id, Image.status)
    ).all()
    by_job: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
    last: dict[str, datetime | None] = {job_id: None for job_id in job_ids}
    for job_id, status, count, processed in rows:
        by_job[job_id][status] = count
        processed, latest = as_utc(processed), last[job_id]
        if processed is not None and (latest is None or processed > latest):
            last[job_id] = processed
    return {job_id: JobStats(counts_from_statuses(by_job[job_id]), last[job_id]) for job_id in job_ids}


def _rate(done: int, started: datetime | None, until: datetime | None) -> float | None:
    if started is None or until is None:
        return None
    seconds = (until - started).total_seconds()
    return done / seconds if seconds > 0 else None


def _webhook(job: Job) -> WebhookView | None:
    if not job.callback_url:
        return None
    return WebhookView(
        url=job.callback_url,
        state=job.webhook_state,
        attempts=job.webhook_attempts,
        error=job.webhook_error,
        delivered_at=as_utc(job.webhook_delivered_at),
    )


def job_view(job: Job, stats: JobStats) -> JobView:
    """The job with counts, progress, throughput and ETA derived from its rows."""
    counts = stats.counts
    final = job.state in FINAL_STATES
    done = counts["succeeded"] + counts["failed"]
    total = counts["total"]
    progress = (done + counts["cancelled"]) / total if total else (1.0 if final else 0.0)
    # A finished job's rate stops at its last processed image, not at "now".
    until = stats.last_processed_at if final else datetime.now(UTC)
    rate = _rate(done, as_utc(job.running_at), as_utc(until))
    eta = 0.0 if final else (counts["pending"] / rate if rate else None)
    link = f"/v1/jobs/{job.id}"
    return JobView(
        id=job.id,
        state=job.state,
        kind=job.kind,
        model=job.custom_model or job.model,
        model_version=job.model_version,
        base_model=job.model,
        top_k=job.top_k,
        store_probabilities=job.store_probabilities,
        precision=job.precision,
        # Jobs from before the option: what their first chunk recorded.
        decode=job.decode_mode or (job.reproducibility or {}).get("decode"),
        counts=Counts.model_validate(counts),
        progress=progress,
        images_per_second=rate,
        eta_seconds=eta,
        timestamps=Timestamps.model_validate({name: as_utc(getattr(job, f"{name}_at")) for name in _STAMPS}),
        error=job.error,
        skipped=job.skipped or [],
        reproducibility=job.reproducibility,
        links=Links.model_validate({"self": link, "results": f"{link}/results", "csv": f"{link}/results.csv"}),
        webhook=_webhook(job),
    )


def job_views(session: Session, jobs: Sequence[Job]) -> list[JobView]:
    """Views of several jobs, their counts in one query."""
    stats = job_stats(session, [job.id for job in jobs])
    return [job_view(job, stats[job.id]) for job in jobs]


def load_job_view(session: Session, job_id: str) -> JobView | None:
    """The view of job `job_id`, or None if there is no such job."""
    job = session.get(Job, job_id)
    return None if job is None else job_views(session, [job])[0]


def existing_jobs(session: Session, job_ids: Sequence[str], table: type[Job] | type[TrainingJob] = Job) -> set[str]:
    """Which of `job_ids` have a row in `table` (jobs, or training jobs), in any state."""
    found: set[str] = set()
    for start in range(0, len(job_ids), 500):  # bounded IN lists
        found.update(session.scalars(select(table.id).where(table.id.in_(job_ids[start : start + 500]))))
    return found
