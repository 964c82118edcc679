"""Training-job transitions: create, claim with a lease, heartbeat, epochs, complete, fail, cancel, delete.

A running training job is held by one delivery (`claimed_by`) until `lease_until`. Its worker
renews the lease; every write of the run names the delivery, so a worker that lost its claim
(it hung past the lease and another worker resumed the job) changes nothing any more.
"""

import enum
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, update
from sqlalchemy.orm import Session

from imagebatch.db.models import FINAL_STATES, JobState, TrainingJob, utcnow
from imagebatch.db.session import changed_rows

_QUEUED, _RUNNING = JobState.QUEUED.value, JobState.RUNNING.value
_CANCELLING, _CANCELLED = JobState.CANCELLING.value, JobState.CANCELLED.value
_HELD_STATES = (_RUNNING, _CANCELLING)


class Claim(enum.StrEnum):
    CLAIMED = "claimed"  # this delivery runs the job now
    BUSY = "busy"  # another delivery holds a live lease
    CANCELLED = "cancelled"  # it was cancelling with nobody running it: now cancelled
    EXHAUSTED = "exhausted"  # claimed max_attempts times already: now failed
    GONE = "gone"  # no such job, or it is final


def create_training_job(
    *,
    session: Session,
    job_id: str,
    options: dict,
    classes: list[str],
    image_count: int,
    data_prefix: str,
    tenant: str | None = None,
    skipped: list[dict] | None = None,
) -> TrainingJob:
    """Insert the training job, `queued`, in the caller's transaction."""
    now = utcnow()
    job = TrainingJob(
        id=job_id,
        tenant=tenant,
        name=options["name"],
        base_model=options["base_model"],
        mode=options["mode"],
        options=options,
        state=_QUEUED,
        progress=0.0,
        epochs=[],
        classes=list(classes),
        image_count=image_count,
        data_prefix=data_prefix,
        skipped=skipped or None,
        created_at=now,
        queued_at=now,
    )
    session.add(job)
    session.flush()
    return job


def mark_training_enqueued(*, session: Session, job_id: str, now: datetime | None = None) -> bool:
    """Record that the job's message is (being) sent; True only for the caller that set it."""
    won = changed_rows(
        session,
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.enqueued_at.is_(None))
        .values(enqueued_at=now or utcnow()),
    )
    return bool(won)


def claim_training(
    *, session: Session, job_id: str, claimed_by: str, lease: float, max_attempts: int, now: datetime | None = None
) -> Claim:
    """Take the job for delivery `claimed_by` until now + lease: a queued job, one nobody holds
    (the sweeper released it), one whose lease lapsed, or one this delivery held (a redelivery)."""
    now = now or utcnow()
    free = or_(TrainingJob.claimed_by.is_(None), TrainingJob.claimed_by == claimed_by, TrainingJob.lease_until < now)
    won = changed_rows(
        session,
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.attempts < max_attempts,
            or_(TrainingJob.state == _QUEUED, (TrainingJob.state == _RUNNING) & free),
        )
        .values(
            state=_RUNNING,
            running_at=func.coalesce(TrainingJob.running_at, now),
            claimed_by=claimed_by,
            lease_until=now + timedelta(seconds=lease),
            heartbeat_at=now,
            attempts=TrainingJob.attempts + 1,
        ),
    )
    if won:
        return Claim.CLAIMED
    if _finish_cancel(session, job_id, free, now=now):
        return Claim.CANCELLED
    message = f"claimed {max_attempts} times and never finished (worker killed, hung or out of memory)"
    exhausted = changed_rows(
        session,
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.state.in_((_QUEUED, _RUNNING)), free)
        .values(state=JobState.FAILED.value, failed_at=now, error=message, claimed_by=None, lease_until=None),
    )
    if exhausted:
        return Claim.EXHAUSTED
    state = session.get(TrainingJob, job_id)
    return Claim.BUSY if state is not None and state.state not in FINAL_STATES else Claim.GONE


def _finish_cancel(session: Session, job_id: str, *where: ColumnElement[bool], now: datetime) -> bool:
    return bool(
        changed_rows(
            session,
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.state == _CANCELLING, *where)
            .values(state=_CANCELLED, cancelled_at=now, claimed_by=None, lease_until=None),
        )
    )


def renew_training_lease(
    *, session: Session, job_id: str, claimed_by: str, lease: float, now: datetime | None = None
) -> str | None:
    """Extend the holder's lease; the job's state (running or cancelling), or None when the claim is lost."""
    now = now or utcnow()
    row = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.claimed_by == claimed_by, TrainingJob.state.in_(_HELD_STATES))
        .values(lease_until=now + timedelta(seconds=lease), heartbeat_at=now)
        .returning(TrainingJob.state)
    ).first()
    return row[0] if row else None


def _held(job_id: str, claimed_by: str, *states: str) -> ColumnElement[bool]:
    return (
        (TrainingJob.id == job_id)
        & (TrainingJob.claimed_by == claimed_by)
        & TrainingJob.state.in_(states or _HELD_STATES)
    )


def record_training_progress(*, session: Session, job_id: str, claimed_by: str, **values: object) -> bool:
    """Write the holder's progress: any of epochs, best, progress, dataset, record, checkpoint_key."""
    allowed = {"epochs", "best", "progress", "dataset", "record", "checkpoint_key"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not training progress: {', '.join(sorted(unknown))}")
    return bool(changed_rows(session, update(TrainingJob).where(_held(job_id, claimed_by)).values(**values)))


def complete_training(*, session: Session, job_id: str, claimed_by: str, model_version: int, **values: object) -> bool:
    """running -> completed with the registered version; refused once cancelling (nothing may be registered)."""
    now = utcnow()
    return bool(
        changed_rows(
            session,
            update(TrainingJob)
            .where(_held(job_id, claimed_by, _RUNNING))
            .values(
                state=JobState.COMPLETED.value,
                completed_at=now,
                progress=1.0,
                model_version=model_version,
                claimed_by=None,
                lease_until=None,
                **values,
            ),
        )
    )


def fail_training(*, session: Session, job_id: str, message: str, claimed_by: str | None = None) -> bool:
    """Any unfinished state -> failed with the reason (only while `claimed_by` holds it, when given)."""
    where = [TrainingJob.id == job_id, TrainingJob.state.not_in(FINAL_STATES)]
    if claimed_by is not None:
        where.append(TrainingJob.claimed_by == claimed_by)
    values = {"state": JobState.FAILED.value, "failed_at": utcnow(), "error": message[:4000], "lease_until": None}
    return bool(changed_rows(session, update(TrainingJob).where(*where).values(**values)))


def finish_training_cancel(*, session: Session, job_id: str, claimed_by: str) -> bool:
    """The holder stopped at a cancel request: cancelling -> cancelled."""
    return _finish_cancel(session, job_id, TrainingJob.claimed_by == claimed_by, now=utcnow())


def request_training_cancel(*, session: Session, job_id: str) -> str | None:
    """A queued job is cancelled at once; a running one becomes cancelling (its worker stops at the next
    batch). The state afterwards, or None when there was no queued or running job to cancel."""
    now = utcnow()
    queued = changed_rows(
        session,
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.state == _QUEUED)
        .values(state=_CANCELLED, cancelling_at=now, cancelled_at=now),
    )
    if queued:
        return _CANCELLED
    running = changed_rows(
        session,
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.state == _RUNNING)
        .values(state=_CANCELLING, cancelling_at=now),
    )
    return _CANCELLING if running else None


def delete_training_job(*, session: Session, job_id: str) -> bool:
    """Delete the row (the API cancels first; the registered model stays); False if there was none."""
    return changed_rows(session, delete(TrainingJob).where(TrainingJob.id == job_id)) > 0
