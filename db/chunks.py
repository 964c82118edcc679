"""Stuck work: requeue chunks nobody finished, give up after bounded attempts, enqueue lost submissions."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session

from imagebatch.db.jobs import chunk_bounds, finalize_idle_jobs
from imagebatch.db.models import ACTIVE_STATES, UNFINISHED_STATES, Image, ImageStatus, Job, JobState, utcnow
from imagebatch.db.session import session_scope
from imagebatch.core import errors

logger = logging.getLogger(__name__)

# send(job_id, model, start, stop, chunk_index): put one chunk message in the broker.
ChunkSender = Callable[[str, str, int, int, int], None]


@dataclass
class SweepReport:
    requeued: list[tuple[str, int, int]] = field(default_factory=list)
    timed_out: int = 0
    enqueued_jobs: list[str] = field(default_factory=list)


def give_up_exhausted(session: Session, job_id: str, start: int, stop: int, max_attempts: int) -> int:
    """Rows of the chunk already claimed `max_attempts` times and still open become `timed_out`.

    Called before every claim, so a chunk that kills its worker each time (redelivered by the
    broker) ends after a bounded number of attempts instead of looping forever.
    """
    result = session.execute(
        update(Image)
        .where(Image.job_id == job_id, Image.idx >= start, Image.idx < stop,
               Image.status == ImageStatus.RUNNING.value, Image.attempts >= max_attempts)
        .values(status=ImageStatus.ERROR.value, error_category=errors.TIMED_OUT,
                error_message=f"claimed {max_attempts} times and never finished "
                              "(worker killed, hung or lost)",
                processed_at=utcnow())
    )
    return result.rowcount


def release_claim(job_id: str, start: int, stop: int) -> None:
    """Hand a chunk that raised back as pending, its attempt not counted; best effort.

    Attempts count claims that vanished (worker killed or hung); a chunk whose worker saw an
    error is retried by the task's own policy instead.
    """
    try:
        with session_scope() as session:
            session.execute(
                update(Image)
                .where(Image.job_id == job_id, Image.idx >= start, Image.idx < stop,
                       Image.status == ImageStatus.RUNNING.value, Image.attempts > 0)
                .values(status=ImageStatus.PENDING.value, attempts=Image.attempts - 1)
            )
    except Exception as exc:  # the database may be the reason the chunk failed
        logger.warning("job %s: could not release chunk [%d, %d): %s", job_id, start, stop, exc)


def _stale_chunks(session: Session, cutoff: datetime) -> dict[tuple[str, int, int], str]:
    """(job_id, start, stop) -> model of every chunk with a row claimed before `cutoff`."""
    # Cancelling jobs too: a stuck chunk would keep them cancelling.
    rows = session.execute(
        select(Image.job_id, Image.idx, Job.chunk_size, Job.total, Job.model)
        .join(Job, Job.id == Image.job_id)
        .where(Job.state.in_(UNFINISHED_STATES), Image.status == ImageStatus.RUNNING.value,
               Image.claimed_at < cutoff)
    ).all()
    chunks = {}
    for job_id, idx, size, total, model in rows:
        start = idx - idx % size
        chunks[(job_id, start, min(start + size, total))] = model
    return chunks


def requeue_stale(
    session: Session, send: ChunkSender, *, now: datetime, deadline: float, max_attempts: int
) -> SweepReport:
    """Requeue chunks claimed more than `deadline` seconds ago; exhausted rows become `timed_out`.

    The conditional UPDATE (still running, still stale) lets exactly one of several sweeping
    workers win each chunk. The message is sent before the caller commits: a send that
    succeeds with a commit that fails only duplicates a message, which claims make harmless.
    """
    report = SweepReport()
    cutoff = now - timedelta(seconds=deadline)
    for (job_id, start, stop), model in _stale_chunks(session, cutoff).items():
        report.timed_out += give_up_exhausted(session, job_id, start, stop, max_attempts)
        reset = session.execute(
            update(Image)
            .where(Image.job_id == job_id, Image.idx >= start, Image.idx < stop,
                   Image.status == ImageStatus.RUNNING.value, Image.claimed_at < cutoff)
            .values(status=ImageStatus.PENDING.value)
        )
        if reset.rowcount:
            send(job_id, model, start, stop, 0)
            report.requeued.append((job_id, start, stop))
            logger.warning("job %s: chunk [%d, %d) not finished within %.0fs of its claim; requeued",
                           job_id, start, stop, deadline)
    return report


def enqueue_abandoned(session: Session, send: ChunkSender, *, now: datetime, grace: float) -> list[str]:
    """Send the chunks of queued jobs whose API died between committing them and enqueueing."""
    cutoff = now - timedelta(seconds=grace)
    candidates = session.execute(
        select(Job.id, Job.model, Job.total, Job.chunk_size)
        .where(Job.state == JobState.QUEUED.value, Job.enqueued_at.is_(None), Job.created_at < cutoff)
    ).all()
    enqueued = []
    for job_id, model, total, chunk_size in candidates:
        won = session.execute(
            update(Job).where(Job.id == job_id, Job.enqueued_at.is_(None)).values(enqueued_at=now)
        ).rowcount
        if not won:
            continue  # another worker's sweeper took it
        for index, (start, stop) in enumerate(chunk_bounds(total, chunk_size)):
            send(job_id, model, start, stop, index)
        enqueued.append(job_id)
        logger.warning("job %s: never enqueued %.0fs after creation; sent its chunks", job_id, grace)
    return enqueued


def requeue_orphans(
    session: Session, send: ChunkSender, *, now: datetime, idle: float, queue_empty: Callable[[str], bool]
) -> list[tuple[str, int, int]]:
    """Resend pending chunks of jobs idle for `idle` seconds while their model's queue is empty.

    Covers chunk messages lost outside the database: a broker without persistence, a message
    fetched by a worker that hung or died before claiming it, or one fetched just as Redis went
    away (kombu pops a message first and records it as unacknowledged in a second command).
    An empty queue means nothing is waiting ahead of them, so no message for those rows can
    still be on its way through the broker; a message a worker still holds (a retry waiting
    out its backoff) only makes a duplicate, which finds its rows claimed and does nothing.
    One query finds the idle jobs (no row claimed or finished since the cutoff) among all of them.
    """
    cutoff = now - timedelta(seconds=idle)
    touched = exists().where(Image.job_id == Job.id, func.coalesce(Image.processed_at, Image.claimed_at) >= cutoff)
    jobs = session.execute(
        select(Job.id, Job.model, Job.chunk_size, Job.total, Job.enqueued_at)
        .where(Job.state.in_(ACTIVE_STATES), Job.enqueued_at < cutoff, ~touched)
    ).all()
    empty: dict[str, bool] = {}
    requeued = []
    for job_id, model, size, total, enqueued_at in jobs:
        if model not in empty:
            empty[model] = queue_empty(model)
        if not empty[model]:
            continue
        starts = session.scalars(
            select(Image.idx).where(Image.job_id == job_id, Image.status == ImageStatus.PENDING.value)
        ).all()
        # Renewing enqueued_at is the lease: one sweeper wins, the next try waits another `idle`.
        won = session.execute(update(Job).where(Job.id == job_id, Job.enqueued_at == enqueued_at)
                              .values(enqueued_at=now)).rowcount
        if not won:
            continue
        chunks = [(start, min(start + size, total)) for start in sorted({idx - idx % size for idx in starts})]
        for start, stop in chunks:
            send(job_id, model, start, stop, 0)
            requeued.append((job_id, start, stop))
        logger.warning("job %s: idle %.0fs with pending images and an empty queue; resent %d chunk(s)",
                       job_id, idle, len(chunks))
    return requeued


def sweep(
    session: Session, send: ChunkSender, *, deadline: float, max_attempts: int, grace: float,
    orphan_after: float, queue_empty: Callable[[str], bool] | None = None, now: datetime | None = None,
) -> SweepReport:
    """One pass of every check, in the caller's transaction."""
    now = now or utcnow()
    report = requeue_stale(session, send, now=now, deadline=deadline, max_attempts=max_attempts)
    report.enqueued_jobs = enqueue_abandoned(session, send, now=now, grace=grace)
    if queue_empty is not None:
        report.requeued += requeue_orphans(session, send, now=now, idle=orphan_after, queue_empty=queue_empty)
    finalize_idle_jobs(session)
    return report


def mark_enqueued(session: Session, job_id: str) -> None:
    """Record that every chunk message of the job is in the broker."""
    session.execute(
        update(Job).where(and_(Job.id == job_id, Job.enqueued_at.is_(None))).values(enqueued_at=utcnow())
    )
