"""Job lifecycle: create, claim chunks, finish, cancel, fail, delete; counts derived from rows."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from imagebatch.core import errors
from imagebatch.db.models import ACTIVE_STATES, FINAL_STATES, OPEN_IMAGE_STATUSES, Image, ImageStatus, Job, JobState, utcnow


@dataclass(frozen=True)
class ImageSource:
    """What the API knows about an image before any worker touches it."""

    source: str
    location: str


@dataclass(frozen=True)
class ClaimedImage:
    id: int
    idx: int
    source: str
    location: str


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
) -> Job:
    """Insert the job and one pending row per image in the caller's transaction."""
    now = utcnow()
    job = Job(
        id=job_id,
        state=JobState.QUEUED.value,
        model=model,
        top_k=top_k,
        store_probabilities=store_probabilities,
        precision=precision,
        total=len(images),
        chunk_size=chunk_size,
        created_at=now,
        queued_at=now,
    )
    session.add(job)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        _copy_pending_images(session, job_id, images)
        return job
    rows = [
        {"job_id": job_id, "idx": i, "source": img.source, "location": img.location,
         "status": ImageStatus.PENDING.value}
        for i, img in enumerate(images)
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(Image), rows[start : start + 5000])
    return job


def _copy_pending_images(session: Session, job_id: str, images: Sequence[ImageSource]) -> None:
    """PostgreSQL: the pending rows through COPY, in the session's transaction (~10x a batched INSERT)."""
    driver = session.connection().connection.driver_connection  # psycopg's own connection
    pending = ImageStatus.PENDING.value
    with driver.cursor() as cursor, cursor.copy(
        "COPY images (job_id, idx, source, location, status) FROM STDIN"
    ) as copy:
        for i, img in enumerate(images):
            copy.write_row((job_id, i, img.source, img.location, pending))


def chunk_bounds(total: int, chunk_size: int) -> list[tuple[int, int]]:
    """Half-open [start, stop) image index ranges, one per chunk task."""
    return [(start, min(start + chunk_size, total)) for start in range(0, total, chunk_size)]


def image_counts(session: Session, job_id: str) -> dict[str, int]:
    """Counts by status, derived from the rows so they cannot drift."""
    rows = session.execute(
        select(Image.status, func.count()).where(Image.job_id == job_id).group_by(Image.status)
    ).all()
    return counts_from_statuses({status: count for status, count in rows})


def counts_from_statuses(by_status: dict[str, int]) -> dict[str, int]:
    """Job counts (total, succeeded, failed, pending = not finished, cancelled) from rows per status."""
    return {
        "total": sum(by_status.values()),
        "succeeded": by_status.get(ImageStatus.OK.value, 0),
        "failed": by_status.get(ImageStatus.ERROR.value, 0),
        "pending": sum(by_status.get(s, 0) for s in OPEN_IMAGE_STATUSES),
        "cancelled": by_status.get(ImageStatus.CANCELLED.value, 0),
    }


def claim_chunk(session: Session, job_id: str, start: int, stop: int) -> list[ClaimedImage] | None:
    """Mark a chunk's open images running and return them; None if the job should not run.

    Rows left `running` by a worker that died are claimed again, so a redelivered chunk
    finishes what its first delivery started.
    """
    state = session.scalar(select(Job.state).where(Job.id == job_id))
    if state is None:
        return None
    in_chunk = (Image.job_id == job_id) & (Image.idx >= start) & (Image.idx < stop)
    if state not in ACTIVE_STATES:
        if state in (JobState.CANCELLING.value, JobState.CANCELLED.value):
            session.execute(
                update(Image)
                .where(in_chunk & Image.status.in_(OPEN_IMAGE_STATUSES))
                .values(status=ImageStatus.CANCELLED.value)
            )
        return None
    if state == JobState.QUEUED.value:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
            .values(state=JobState.RUNNING.value, running_at=utcnow())
        )
    # claimed_at and attempts let the sweeper (db/chunks.py) find chunks nobody finishes.
    session.execute(
        update(Image)
        .where(in_chunk & Image.status.in_(OPEN_IMAGE_STATUSES))
        .values(status=ImageStatus.RUNNING.value, claimed_at=utcnow(), attempts=Image.attempts + 1)
    )
    rows = session.execute(
        select(Image.id, Image.idx, Image.source, Image.location)
        .where(in_chunk & (Image.status == ImageStatus.RUNNING.value))
        .order_by(Image.idx)
    ).all()
    return [ClaimedImage(*row) for row in rows]


def finalize_job(session: Session, job_id: str) -> None:
    """Close the job once no image is open; safe to call from every worker after each chunk.

    A single conditional UPDATE per state, run after the chunk's own commit, so the last
    chunk to commit always sees every other chunk's rows.
    """
    _finalize(session, Job.id == job_id)


def finalize_idle_jobs(session: Session) -> None:
    """Close every unfinished job with no open image (e.g. its finalization failed while the
    database was away): the same two UPDATEs, over all jobs at once."""
    _finalize(session)


def _finalize(session: Session, *which: ColumnElement[bool]) -> None:
    nothing_open = ~exists().where(Image.job_id == Job.id, Image.status.in_(OPEN_IMAGE_STATUSES))
    now = utcnow()
    session.execute(
        update(Job)
        .where(*which, Job.state.in_(ACTIVE_STATES), nothing_open)
        .values(state=JobState.COMPLETED.value, completed_at=now)
    )
    session.execute(
        update(Job)
        .where(*which, Job.state == JobState.CANCELLING.value, nothing_open)
        .values(state=JobState.CANCELLED.value, cancelled_at=now)
    )


def request_cancel(session: Session, job_id: str) -> str | None:
    """Stop a job: pending images are cancelled now, running chunks finish. Returns the state."""
    state = session.scalar(select(Job.state).where(Job.id == job_id))
    if state is None or state not in ACTIVE_STATES:
        return state
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
        .values(state=JobState.CANCELLING.value, cancelling_at=utcnow())
    )
    session.execute(
        update(Image)
        .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING.value)
        .values(status=ImageStatus.CANCELLED.value)
    )
    finalize_job(session, job_id)
    return session.scalar(select(Job.state).where(Job.id == job_id))


def fail_job(session: Session, job_id: str, message: str) -> None:
    """Mark a job that cannot run at all; its open images become errors carrying the reason."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.not_in(FINAL_STATES))
        .values(state=JobState.FAILED.value, failed_at=utcnow(), error=message)
    )
    session.execute(
        update(Image)
        .where(Image.job_id == job_id, Image.status.in_(OPEN_IMAGE_STATUSES))
        .values(status=ImageStatus.ERROR.value, error_category=errors.JOB_FAILED, error_message=message)
    )


def record_reproducibility(session: Session, job_id: str, record: dict) -> None:
    """Store what produced the job's results; the first chunk to run writes it."""
    session.execute(
        update(Job).where(Job.id == job_id, Job.reproducibility.is_(None)).values(reproducibility=record)
    )


def delete_job(session: Session, job_id: str) -> bool:
    session.execute(delete(Image).where(Image.job_id == job_id))
    return session.execute(delete(Job).where(Job.id == job_id)).rowcount > 0
