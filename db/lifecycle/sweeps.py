"""Stuck work: requeue chunks nobody finished, give up after bounded attempts, enqueue lost submissions."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from imagebatch.core.chunks import Chunk, job_chunks, resent_chunks
from imagebatch.db.lifecycle.chunks import give_up_exhausted, requeue_stale_chunk
from imagebatch.db.lifecycle.jobs import finalize_idle_jobs, mark_enqueued, renew_enqueued
from imagebatch.db.lifecycle.workers import dead_cutoff, forget_dead_workers, requeue_dead_claims
from imagebatch.db.models import ACTIVE_STATES, UNFINISHED_STATES, Image, ImageStatus, Job, JobState, utcnow

logger = logging.getLogger(__name__)

# Puts chunk messages in the broker (core.chunks.send_chunks through the worker's Celery app).
ChunkSender = Callable[[Sequence[Chunk]], object]


@dataclass
class SweepReport:
    requeued: list[tuple[str, int, int]] = field(default_factory=list)
    timed_out: int = 0
    enqueued_jobs: list[str] = field(default_factory=list)
    sent: list[Chunk] = field(default_factory=list)
    dead_workers: int = 0  # heartbeat rows of silent workers removed


def _stale_chunks(session: Session, cutoff: datetime) -> list[Chunk]:
    """Every chunk with a row claimed before `cutoff`, as it would be sent again."""
    # Cancelling jobs too: a stuck chunk would keep them cancelling. Ordered, so concurrent
    # sweepers lock rows in the same order.
    rows = session.execute(
        select(Image.job_id, Image.idx, Job.chunk_size, Job.total, Job.model)
        .join(Job, Job.id == Image.job_id)
        .where(Job.state.in_(UNFINISHED_STATES), Image.status == ImageStatus.RUNNING.value, Image.claimed_at < cutoff)
        .order_by(Image.job_id, Image.idx)
    ).all()
    chunks = (resent_chunks(job_id, model, total, size, [idx])[0] for job_id, idx, size, total, model in rows)
    return list(dict.fromkeys(chunks))


def requeue_stale(*, session: Session, now: datetime, deadline: float, max_attempts: int) -> SweepReport:
    """Chunks claimed more than `deadline` seconds ago go back to pending (to be sent again);
    rows claimed `max_attempts` times become `timed_out` instead."""
    report = SweepReport()
    cutoff = now - timedelta(seconds=deadline)
    for chunk in _stale_chunks(session, cutoff):
        job_id, start, stop = chunk.job_id, chunk.start, chunk.stop
        report.timed_out += give_up_exhausted(
            session=session, job_id=job_id, start=start, stop=stop, max_attempts=max_attempts
        )
        if requeue_stale_chunk(session=session, job_id=job_id, start=start, stop=stop, cutoff=cutoff):
            report.sent.append(chunk)
            report.requeued.append((chunk.job_id, chunk.start, chunk.stop))
            logger.warning(
                "job %s: chunk [%d, %d) not finished within %.0fs of its claim; requeued",
                chunk.job_id,
                chunk.start,
                chunk.stop,
                deadline,
            )
    return report


def enqueue_abandoned(*, session: Session, now: datetime, grace: float) -> tuple[list[str], list[Chunk]]:
    """The chunks of queued jobs whose API died between committing them and enqueueing."""
    cutoff = now - timedelta(seconds=grace)
    candidates = session.execute(
        select(Job.id, Job.model, Job.total, Job.chunk_size).where(
            Job.state == JobState.QUEUED.value, Job.enqueued_at.is_(None), Job.created_at < cutoff
        )
    ).all()
    enqueued, chunks = [], []
    for job_id, model, total, chunk_size in candidates:
        if not mark_enqueued(session=session, job_id=job_id, now=now):
            continue  # another worker's sweeper took it
        chunks += job_chunks(job_id, model, total, chunk_size)
        enqueued.append(job_id)
        logger.warning("job %s: never enqueued %.0fs after creation; sent its chunks", job_id, grace)
    return enqueued, chunks


def requeue_orphans(*, session: Session, now: datetime, idle: float, queue_empty: Callable[[str], bool]) -> list[Chunk]:
    """Pending chunks of jobs idle for `idle` seconds while their model's queue is empty
    (`idle` 0: of every active job, as when a worker was just found dead).

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
        select(Job.id, Job.model, Job.chunk_size, Job.total, Job.enqueued_at).where(
            Job.state.in_(ACTIVE_STATES), Job.enqueued_at < cutoff, ~touched
        )
    ).all()
    empty: dict[str, bool] = {}
    chunks: list[Chunk] = []
    for job_id, model, size, total, enqueued_at in jobs:
        if model not in empty:
            empty[model] = queue_empty(model)
        if not empty[model]:
            continue
        pending = session.scalars(
            select(Image.idx).where(Image.job_id == job_id, Image.status == ImageStatus.PENDING.value)
        ).all()
        # Renewing enqueued_at is the lease: one sweeper wins, the next try waits another `idle`.
        assert enqueued_at is not None  # selected by enqueued_at < cutoff
        if not renew_enqueued(session=session, job_id=job_id, seen=enqueued_at, now=now):
            continue
        resent = resent_chunks(job_id, model, total, size, pending)
        chunks += resent
        why = f"idle {idle:.0f}s" if idle else "a worker died"
        logger.warning(
            "job %s: pending images behind an empty queue (%s); resent %d chunk(s)", job_id, why, len(resent)
        )
    return chunks


def sweep(
    *,
    session: Session,
    send: ChunkSender,
    deadline: float,
    max_attempts: int,
    grace: float,
    orphan_after: float,
    queue_empty: Callable[[str], bool] | None = None,
    dead_after: float | None = None,
    now: datetime | None = None,
) -> SweepReport:
    """One pass of every check in the caller's transaction; the chunks to resend go out in one batch.

    `dead_after`: rows held by a worker whose heartbeat is older than that many seconds are
    requeued (None: only the deadline applies). A pass that finds such a worker dead does not wait
    `orphan_after` either: the messages it had fetched but not claimed yet are lost with it on a
    broker that never redelivers them (the embedded SQLite one) or come back only after the
    visibility timeout (Redis), so every pending chunk behind an empty queue is resent at once (a
    duplicate of a message a live worker still holds finds its rows claimed and does nothing).

    The chunks are sent before the caller commits: a send that succeeds with a commit that fails only
    duplicates a message, which claims make harmless; a send that fails rolls the pass back.
    """
    now = now or utcnow()
    report = requeue_stale(session=session, now=now, deadline=deadline, max_attempts=max_attempts)
    if dead_after is not None:  # chunks of workers whose heartbeat stopped, long before their deadline
        cutoff = dead_cutoff(now, dead_after)
        dead, timed_out = requeue_dead_claims(session=session, cutoff=cutoff, max_attempts=max_attempts)
        report.dead_workers = forget_dead_workers(session=session, cutoff=cutoff)
        report.timed_out += timed_out
        report.sent += dead
        report.requeued += [(chunk.job_id, chunk.start, chunk.stop) for chunk in dead]
    report.enqueued_jobs, abandoned = enqueue_abandoned(session=session, now=now, grace=grace)
    report.sent += abandoned
    if queue_empty is not None:
        idle = 0.0 if report.dead_workers else orphan_after
        orphans = requeue_orphans(session=session, now=now, idle=idle, queue_empty=queue_empty)
        report.sent += orphans
        report.requeued += [(chunk.job_id, chunk.start, chunk.stop) for chunk in orphans]
    finalize_idle_jobs(session=session)
    # A stale chunk just reset to pending is an idle job's pending chunk too: send it once.
    report.sent = list(dict.fromkeys(report.sent))
    report.requeued = list(dict.fromkeys(report.requeued))
    if report.sent:
        send(report.sent)
    return report
