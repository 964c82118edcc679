"""Job transitions: create, finalize (completed/cancelled), cancel, fail, enqueue marks, withdraw, delete."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, exists, insert, update
from sqlalchemy.orm import Session

from imagebatch.core import errors
from imagebatch.db.models import (
    ACTIVE_STATES,
    FINAL_STATES,
    OPEN_IMAGE_STATUSES,
    Artefact,
    Image,
    ImageStatus,
    Job,
    JobKind,
    JobState,
    WebhookState,
    utcnow,
)
from imagebatch.db.session import changed_rows


@dataclass(frozen=True)
class ImageSource:
    """What the API knows about an image before any worker touches it."""

    source: str
    location: str
    label: str | None = None  # an evaluation image's true class


def create_job(
    *,
    session: Session,
    job_id: str,
    model: str,
    top_k: int,
    store_probabilities: bool,
    precision: str,
    chunk_size: int,
    images: Sequence[ImageSource],
    skipped: list[dict] | None = None,
    tenant: str | None = None,
    idempotency_key: str | None = None,
    idempotency_fingerprint: str | None = None,
    callback_url: str | None = None,
    decode: str | None = None,
    decode_mode: str | None = None,
    kind: str = JobKind.CLASSIFY.value,
    custom_model: str | None = None,
    model_version: int | None = None,
) -> Job:
    """Insert the job, `queued`, and one pending row per image in the caller's transaction.

    `decode` is the option as submitted, `decode_mode` the mode resolved from it (None: the worker
    resolves). A custom model's job names its base architecture as `model` (its queue) plus
    `custom_model` and the `model_version` resolved at submission.
    """
    now = utcnow()
    job = Job(
        id=job_id,
        state=JobState.QUEUED.value,
        model=model,
        top_k=top_k,
        store_probabilities=store_probabilities,
        precision=precision,
        decode=decode,
        decode_mode=decode_mode,
        total=len(images),
        chunk_size=chunk_size,
        created_at=now,
        queued_at=now,
        skipped=skipped or None,
        tenant=tenant,
        idempotency_key=idempotency_key,
        idempotency_fingerprint=idempotency_fingerprint,
        callback_url=callback_url,
        webhook_state=WebhookState.PENDING.value if callback_url else None,
        kind=kind,
        custom_model=custom_model,
        model_version=model_version,
    )
    session.add(job)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        _copy_pending_images(session, job_id, images)
        return job
    rows = [
        {
            "job_id": job_id,
            "idx": i,
            "source": img.source,
            "location": img.location,
            "status": ImageStatus.PENDING.value,
            "true_label": img.label,
        }
        for i, img in enumerate(images)
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(Image), rows[start : start + 5000])
    return job


def _copy_pending_images(session: Session, job_id: str, images: Sequence[ImageSource]) -> None:
    """PostgreSQL: the pending rows through COPY, in the session's transaction (~10x a batched INSERT)."""
    driver = session.connection().connection.driver_connection  # psycopg's own connection
    assert driver is not None  # None only once the pooled connection is closed
    pending = ImageStatus.PENDING.value
    with (
        driver.cursor() as cursor,
        cursor.copy("COPY images (job_id, idx, source, location, status, true_label) FROM STDIN") as copy,
    ):
        for i, img in enumerate(images):
            copy.write_row((job_id, i, img.source, img.location, pending, img.label))


def finalize_job(*, session: Session, job_id: str) -> str | None:
    """Close the job once no image is open; its final state if this call closed it, else None.

    Safe to call from every worker after each chunk: one conditional UPDATE per state, run
    after the chunk's own commit, so the last chunk to commit always sees every other chunk's
    rows, and of several finishing at once exactly one closes the job (the row lock decides).
    """
    closed = _finalize(session, Job.id == job_id)
    return closed[0] if closed else None


def finalize_idle_jobs(*, session: Session) -> int:
    """Close every unfinished job with no open image (e.g. its finalization failed while the
    database was away): the same two UPDATEs, over all jobs at once. Returns how many closed."""
    return len(_finalize(session))


def _finalize(session: Session, *which: ColumnElement[bool]) -> list[str]:
    nothing_open = ~exists().where(Image.job_id == Job.id, Image.status.in_(OPEN_IMAGE_STATUSES))
    now = utcnow()
    completed = changed_rows(
        session,
        update(Job)
        .where(*which, Job.state.in_(ACTIVE_STATES), nothing_open)
        .values(state=JobState.COMPLETED.value, completed_at=now),
    )
    cancelled = changed_rows(
        session,
        update(Job)
        .where(*which, Job.state == JobState.CANCELLING.value, nothing_open)
        .values(state=JobState.CANCELLED.value, cancelled_at=now),
    )
    return [JobState.COMPLETED.value] * completed + [JobState.CANCELLED.value] * cancelled


def request_cancel(*, session: Session, job_id: str) -> str | None:
    """Stop a queued or running job: pending images are cancelled now, running chunks finish.

    Returns the job's state afterwards (cancelled at once when nothing was running), or None
    when no queued or running job `job_id` was there to cancel.
    """
    won = changed_rows(
        session,
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
        .values(state=JobState.CANCELLING.value, cancelling_at=utcnow()),
    )
    if not won:
        return None
    session.execute(
        update(Image)
        .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING.value)
        .values(status=ImageStatus.CANCELLED.value)
    )
    return finalize_job(session=session, job_id=job_id) or JobState.CANCELLING.value


def fail_job(*, session: Session, job_id: str, message: str) -> bool:
    """Mark a job that cannot run at all; its open images become errors carrying the reason.

    Refused (False) for a job already completed, failed or cancelled.
    """
    won = changed_rows(
        session,
        update(Job)
        .where(Job.id == job_id, Job.state.not_in(FINAL_STATES))
        .values(state=JobState.FAILED.value, failed_at=utcnow(), error=message),
    )
    if won:
        session.execute(
            update(Image)
            .where(Image.job_id == job_id, Image.status.in_(OPEN_IMAGE_STATUSES))
            .values(status=ImageStatus.ERROR.value, error_category=errors.JOB_FAILED, error_message=message)
        )
    return bool(won)


def record_reproducibility(*, session: Session, job_id: str, record: dict) -> bool:
    """Store what produced the job's results; the first chunk to run writes it, later ones are refused."""
    return bool(
        changed_rows(
            session, update(Job).where(Job.id == job_id, Job.reproducibility.is_(None)).values(reproducibility=record)
        )
    )


def mark_enqueued(*, session: Session, job_id: str, now: datetime | None = None) -> bool:
    """Record that the job's chunk messages are (being) sent; True only for the caller that set it.

    The API marks its own sends; an Idempotency-Key retry or the sweeper that wins this mark on
    a job whose API died mid-submission is the one that sends the chunks.
    """
    return bool(
        changed_rows(
            session, update(Job).where(Job.id == job_id, Job.enqueued_at.is_(None)).values(enqueued_at=now or utcnow())
        )
    )


def unmark_enqueued(*, session: Session, job_id: str, seen: datetime) -> bool:
    """Take back the caller's own enqueued mark (`seen`) when its sends failed, so a sweeper or a
    retry sends the chunks later; refused once anyone has moved the mark."""
    return bool(
        changed_rows(session, update(Job).where(Job.id == job_id, Job.enqueued_at == seen).values(enqueued_at=None))
    )


def renew_enqueued(*, session: Session, job_id: str, seen: datetime, now: datetime) -> bool:
    """Move enqueued_at from `seen` to `now`: a lease, so one sweeper resends a job's lost chunks."""
    return bool(
        changed_rows(session, update(Job).where(Job.id == job_id, Job.enqueued_at == seen).values(enqueued_at=now))
    )


def withdraw_job(*, session: Session, job_id: str) -> bool:
    """Undo a submission whose chunks could not be sent: delete the job if it is still queued and
    was never enqueued (else a sweeper or a retry has taken it on, and it stays). True if deleted."""
    unsent = (Job.id == job_id, Job.state == JobState.QUEUED.value, Job.enqueued_at.is_(None))
    session.execute(delete(Image).where(Image.job_id == job_id, exists().where(*unsent)))
    return changed_rows(session, delete(Job).where(*unsent)) > 0


def delete_job(*, session: Session, job_id: str) -> bool:
    """Delete the job and its rows (the API cancels an active job first); False if there was none."""
    session.execute(delete(Image).where(Image.job_id == job_id))
    session.execute(delete(Artefact).where(Artefact.job_id == job_id))
    return changed_rows(session, delete(Job).where(Job.id == job_id)) > 0
