"""Chunk transitions on image rows: claim, write results, give up, release, requeue, cancel."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, or_, select, update
from sqlalchemy.orm import Session

from imagebatch.core import errors
from imagebatch.db.models import (
    ACTIVE_STATES,
    OPEN_IMAGE_STATUSES,
    Image,
    ImageStatus,
    Job,
    JobState,
    utcnow,
)
from imagebatch.db.session import changed_rows

_RUNNING = ImageStatus.RUNNING.value
_PENDING = ImageStatus.PENDING.value


@dataclass(frozen=True)
class ClaimedImage:
    id: int
    idx: int
    source: str
    location: str


def _in_chunk(job_id: str, start: int, stop: int) -> ColumnElement[bool]:
    return (Image.job_id == job_id) & (Image.idx >= start) & (Image.idx < stop)


def _held_by(claimed_by: str) -> ColumnElement[bool]:
    return (Image.status == _RUNNING) & (Image.claimed_by == claimed_by)


def claim_chunk(
    *, session: Session, job_id: str, start: int, stop: int, claimed_by: str, worker: str | None = None
) -> list[ClaimedImage] | None:
    """Mark the chunk's pending images running for delivery `claimed_by` in worker process
    `worker` and return them, in index order; None if the job should not run (gone, cancelled,
    failed, finished). The sweeper requeues them once `worker`'s heartbeat stops.

    Rows `claimed_by` itself left running (its worker died, the broker redelivered the same
    message) are taken back, so the redelivery finishes what the first delivery started; rows
    another delivery holds are left to it. Of several deliveries claiming at once, the row
    locks let exactly one have each row. A job still queued becomes running.
    """
    state = session.scalar(select(Job.state).where(Job.id == job_id))
    if state is None:
        return None
    if state not in ACTIVE_STATES:
        if state in (JobState.CANCELLING.value, JobState.CANCELLED.value):
            cancel_chunk(session=session, job_id=job_id, start=start, stop=stop, claimed_by=claimed_by)
        return None
    if state == JobState.QUEUED.value:
        # The job row before its images, the order cancel and fail take too: no deadlock with them.
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
            .values(state=JobState.RUNNING.value, running_at=utcnow())
        )
    job_active = exists().where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
    claimed = session.execute(
        update(Image)
        .where(_in_chunk(job_id, start, stop), or_(Image.status == _PENDING, _held_by(claimed_by)), job_active)
        .values(
            status=_RUNNING,
            claimed_at=utcnow(),
            claimed_by=claimed_by,
            claimed_worker=worker,
            attempts=Image.attempts + 1,
        )
        .returning(Image.id, Image.idx, Image.source, Image.location)
    ).all()
    return sorted((ClaimedImage(*row) for row in claimed), key=lambda image: image.idx)


def cancel_chunk(*, session: Session, job_id: str, start: int, stop: int, claimed_by: str) -> int:
    """A chunk of a cancelling job: its pending rows and those `claimed_by` holds become cancelled."""
    return changed_rows(
        session,
        update(Image)
        .where(_in_chunk(job_id, start, stop), or_(Image.status == _PENDING, _held_by(claimed_by)))
        .values(status=ImageStatus.CANCELLED.value),
    )


def write_chunk_results(*, session: Session, rows: Sequence[dict]) -> None:
    """The chunk's outcome, one dict per image ("id" plus the columns to set): one executemany.

    Only rows still `running` are written: a late duplicate (a worker that hung past its
    deadline, a redelivered message) never overwrites a row already finished, cancelled or
    given up. ORM bulk UPDATE by primary key with that extra criterion; there are no ORM
    objects to synchronise.
    """
    if rows:
        session.execute(
            update(Image).where(Image.status == _RUNNING).execution_options(synchronize_session=None),
            list(rows),
        )


def fail_chunk(*, session: Session, job_id: str, start: int, stop: int, message: str) -> int:
    """Give up on a chunk whose task ran out of retries: its open images become `internal` errors.

    Pending ones are included because a chunk whose claim itself kept failing never made them
    running, and the job could otherwise never finish.
    """
    return changed_rows(
        session,
        update(Image)
        .where(_in_chunk(job_id, start, stop), Image.status.in_(OPEN_IMAGE_STATUSES))
        .values(
            status=ImageStatus.ERROR.value,
            error_category=errors.INTERNAL,
            error_message=message[:2000],
            processed_at=utcnow(),
        ),
    )


def give_up_exhausted(
    *, session: Session, job_id: str, start: int, stop: int, max_attempts: int, claimed_by: str | None = None
) -> int:
    """Rows of the chunk already claimed `max_attempts` times and still running become `timed_out`.

    Called before every claim (with the delivery's own `claimed_by`, so only rows it held
    itself), so a chunk that kills its worker each time (redelivered by the broker) ends after
    a bounded number of attempts instead of looping forever; and by the sweeper for stale chunks.
    """
    held = _held_by(claimed_by) if claimed_by is not None else Image.status == _RUNNING
    return changed_rows(
        session,
        update(Image)
        .where(_in_chunk(job_id, start, stop), held, Image.attempts >= max_attempts)
        .values(
            status=ImageStatus.ERROR.value,
            error_category=errors.TIMED_OUT,
            error_message=f"claimed {max_attempts} times and never finished (worker killed, hung or lost)",
            processed_at=utcnow(),
        ),
    )


def release_claim(*, session: Session, job_id: str, start: int, stop: int, claimed_by: str) -> int:
    """Hand the rows `claimed_by` holds back as pending, the attempt not counted.

    Attempts count claims that vanished (worker killed or hung); a chunk whose worker saw an
    error is retried by the task's own policy instead.
    """
    return changed_rows(
        session,
        update(Image)
        .where(_in_chunk(job_id, start, stop), _held_by(claimed_by), Image.attempts > 0)
        .values(status=_PENDING, claimed_by=None, claimed_worker=None, attempts=Image.attempts - 1),
    )


def requeue_stale_chunk(*, session: Session, job_id: str, start: int, stop: int, cutoff: datetime) -> int:
    """Rows of the chunk still running since before `cutoff` become pending again, held by nobody.

    Conditional (still running, still stale), so of several sweepers exactly one wins the chunk
    and sends it again; returns how many rows this caller reset.
    """
    return changed_rows(
        session,
        update(Image)
        .where(_in_chunk(job_id, start, stop), Image.status == _RUNNING, Image.claimed_at < cutoff)
        .values(status=_PENDING, claimed_by=None, claimed_worker=None),
    )
