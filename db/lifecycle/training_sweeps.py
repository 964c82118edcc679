"""Stuck training jobs: resend one whose worker's lease lapsed (so another resumes it), or that was never sent."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagebatch.db.lifecycle.training import mark_training_enqueued
from imagebatch.db.models import JobState, TrainingJob, utcnow
from imagebatch.db.session import changed_rows

logger = logging.getLogger(__name__)

_RUNNING, _CANCELLING = JobState.RUNNING.value, JobState.CANCELLING.value


@dataclass
class TrainingSweep:
    resent: list[str] = field(default_factory=list)  # lease lapsed: sent again to be resumed
    enqueued: list[str] = field(default_factory=list)  # never sent (or the message was lost): sent
    cancelled: list[str] = field(default_factory=list)  # cancelling with a dead worker: now cancelled


def _release_lapsed(session: Session, now: datetime, lease: float, report: TrainingSweep) -> None:
    """Running jobs whose lease lapsed: released (nobody holds them) under a fresh lease, and resent.

    Conditional on the lease seen, so of several sweepers one wins each job; the fresh lease keeps
    the others from resending it until it lapses again (the message lost too, or no worker free).
    """
    lapsed = session.execute(
        select(TrainingJob.id, TrainingJob.state, TrainingJob.lease_until)
        .where(TrainingJob.state.in_((_RUNNING, _CANCELLING)), TrainingJob.lease_until < now)
        .order_by(TrainingJob.id)
    ).all()
    for job_id, state, seen in lapsed:
        where = (TrainingJob.id == job_id, TrainingJob.state == state, TrainingJob.lease_until == seen)
        if state == _CANCELLING:
            values = {"state": JobState.CANCELLED.value, "cancelled_at": now, "claimed_by": None, "lease_until": None}
            if changed_rows(session, update(TrainingJob).where(*where).values(**values)):
                report.cancelled.append(job_id)
            continue
        values = {"claimed_by": None, "lease_until": now + timedelta(seconds=lease)}
        if changed_rows(session, update(TrainingJob).where(*where).values(**values)):
            report.resent.append(job_id)
            logger.warning("training job %s: its worker's lease lapsed at %s; sent again to resume", job_id, seen)


def _never_sent(session: Session, now: datetime, grace: float, report: TrainingSweep) -> None:
    """Queued jobs whose API died between committing and sending (enqueued_at never set)."""
    cutoff = now - timedelta(seconds=grace)
    candidates = session.scalars(
        select(TrainingJob.id).where(
            TrainingJob.state == JobState.QUEUED.value,
            TrainingJob.enqueued_at.is_(None),
            TrainingJob.created_at < cutoff,
        )
    ).all()
    for job_id in candidates:
        if mark_training_enqueued(session=session, job_id=job_id, now=now):
            report.enqueued.append(job_id)
            logger.warning("training job %s: never enqueued %.0fs after creation; sent", job_id, grace)


def _lost(session: Session, now: datetime, idle: float, queue_empty: Callable[[], bool], report: TrainingSweep) -> None:
    """Queued jobs sent more than `idle` seconds ago while the training queue is empty: the message was lost."""
    cutoff = now - timedelta(seconds=idle)
    stale = session.execute(
        select(TrainingJob.id, TrainingJob.enqueued_at).where(
            TrainingJob.state == JobState.QUEUED.value, TrainingJob.enqueued_at < cutoff
        )
    ).all()
    if not stale or not queue_empty():
        return
    for job_id, seen in stale:
        renewed = changed_rows(
            session,
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.enqueued_at == seen)
            .values(enqueued_at=now),
        )
        if renewed:
            report.enqueued.append(job_id)
            logger.warning("training job %s: queued %.0fs with an empty training queue; sent again", job_id, idle)


def sweep_training(
    *,
    session: Session,
    send: Callable[[str], object],
    lease: float,
    grace: float,
    idle: float,
    queue_empty: Callable[[], bool] | None = None,
    now: datetime | None = None,
) -> TrainingSweep:
    """One pass in the caller's transaction; each job to (re)send goes out before the caller commits
    (a duplicate message is harmless: the claim lets one delivery run the job)."""
    now = now or utcnow()
    report = TrainingSweep()
    _release_lapsed(session, now, lease, report)
    _never_sent(session, now, grace, report)
    if queue_empty is not None:
        _lost(session, now, idle, queue_empty, report)
    for job_id in dict.fromkeys(report.resent + report.enqueued):
        send(job_id)
    return report
