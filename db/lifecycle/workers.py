"""Worker liveness: heartbeat rows, and the chunks of workers that stopped beating or shut down."""

import logging
from datetime import datetime, timedelta
from itertools import groupby

from sqlalchemy import ColumnElement, case, delete, exists, insert, select, update
from sqlalchemy.orm import Session

from imagebatch.core import errors
from imagebatch.core.chunks import Chunk, resent_chunks
from imagebatch.db.models import UNFINISHED_STATES, Image, ImageStatus, Job, JobState, WorkerProcess, utcnow
from imagebatch.db.session import changed_rows

logger = logging.getLogger(__name__)

_RUNNING = ImageStatus.RUNNING.value


def beat(*, session: Session, worker_id: str, hostname: str, pid: int, now: datetime | None = None) -> None:
    """Announce `worker_id` alive now; its first beat (or one after a sweeper removed it) inserts its row."""
    now = now or utcnow()
    seen = update(WorkerProcess).where(WorkerProcess.id == worker_id).values(seen_at=now)
    if not changed_rows(session, seen):
        session.execute(
            insert(WorkerProcess).values(id=worker_id, hostname=hostname[:255], pid=pid, started_at=now, seen_at=now)
        )


def _dead(cutoff: datetime) -> ColumnElement[bool]:
    """A running row whose named claimant has not beaten since `cutoff` (or has no row at all).

    Rows naming no worker (claimed before migration 0009) are left to CHUNK_DEADLINE.
    """
    alive = exists().where(WorkerProcess.id == Image.claimed_worker, WorkerProcess.seen_at >= cutoff)
    return (Image.status == _RUNNING) & Image.claimed_worker.is_not(None) & ~alive


def _chunks_of(session: Session, *where: ColumnElement[bool]) -> list[Chunk]:
    """The chunks (as they would be sent again) holding the unfinished jobs' rows that match `where`."""
    rows = session.execute(
        select(Image.job_id, Job.model, Job.total, Job.chunk_size, Image.idx)
        .join(Job, Job.id == Image.job_id)
        .where(Job.state.in_(UNFINISHED_STATES), *where)
        .order_by(Image.job_id, Image.idx)  # concurrent sweepers lock rows in one order
    ).all()
    chunks: list[Chunk] = []
    for (job, model, total, size), group in groupby(rows, key=lambda row: tuple(row[:4])):
        chunks += resent_chunks(job, model, total, size, [row.idx for row in group])
    return chunks


def _in_chunk(chunk: Chunk) -> ColumnElement[bool]:
    return (Image.job_id == chunk.job_id) & (Image.idx >= chunk.start) & (Image.idx < chunk.stop)


def requeue_dead_claims(*, session: Session, cutoff: datetime, max_attempts: int) -> tuple[list[Chunk], int]:
    """Rows held by workers silent since `cutoff` go back to pending; returns the chunks to send
    again and how many rows became `timed_out` (claimed `max_attempts` times already).

    A cancelling job's such rows are cancelled instead, so the cancel ends without a worker.
    Each UPDATE repeats the dead-claimant test, so of several sweepers one wins each row.
    """
    resend: list[Chunk] = []
    timed_out = 0
    for chunk in _chunks_of(session, _dead(cutoff)):
        rows = _in_chunk(chunk) & _dead(cutoff)
        cancelling = exists().where(Job.id == chunk.job_id, Job.state == JobState.CANCELLING.value)
        changed_rows(session, update(Image).where(rows, cancelling).values(status=ImageStatus.CANCELLED.value))
        timed_out += changed_rows(
            session,
            update(Image)
            .where(rows, Image.attempts >= max_attempts)
            .values(
                status=ImageStatus.ERROR.value,
                error_category=errors.TIMED_OUT,
                error_message=f"claimed {max_attempts} times and never finished (worker killed, hung or lost)",
                processed_at=utcnow(),
            ),
        )
        pending = {"status": ImageStatus.PENDING.value, "claimed_by": None, "claimed_worker": None}
        freed = changed_rows(session, update(Image).where(rows).values(**pending))
        if freed:
            resend.append(chunk)
            logger.warning(
                "job %s: chunk [%d, %d) held by a worker silent since %s; requeued",
                chunk.job_id,
                chunk.start,
                chunk.stop,
                cutoff.isoformat(timespec="seconds"),
            )
    return resend, timed_out


def forget_dead_workers(*, session: Session, cutoff: datetime) -> int:
    """Remove the rows of workers silent since `cutoff` that hold nothing any more; how many went."""
    holds = exists().where(Image.claimed_worker == WorkerProcess.id, Image.status == _RUNNING)
    return changed_rows(session, delete(WorkerProcess).where(WorkerProcess.seen_at < cutoff, ~holds))


def retire_worker(*, session: Session, worker_id: str) -> list[Chunk]:
    """A worker shutting down: the rows it still holds go back to pending (the attempt not counted)
    and its heartbeat row goes; returns the chunks to send again."""
    held = (Image.status == _RUNNING) & (Image.claimed_worker == worker_id)
    chunks = _chunks_of(session, held)
    changed_rows(
        session,
        update(Image)
        .where(held)
        .values(
            status=ImageStatus.PENDING.value,
            claimed_by=None,
            claimed_worker=None,
            attempts=case((Image.attempts > 0, Image.attempts - 1), else_=0),
        ),
    )
    session.execute(delete(WorkerProcess).where(WorkerProcess.id == worker_id))
    return chunks


def dead_cutoff(now: datetime, dead_after: float) -> datetime:
    return now - timedelta(seconds=dead_after)
