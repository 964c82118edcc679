"""A tenant's queue state: its unfinished work and recent throughput, for an honest Retry-After."""

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagebatch.db.models import OPEN_IMAGE_STATUSES, UNFINISHED_STATES, Image, Job, TrainingJob, utcnow

# Throughput is measured over this window; older work says little about the queue now.
RATE_WINDOW = timedelta(minutes=5)
# With nothing finished in the window there is no rate to go by: a plain hint, then clamped.
UNKNOWN_WAIT, SHORTEST_WAIT, LONGEST_WAIT = 30, 1, 3600


def active_jobs(session: Session, tenant: str) -> int:
    """The tenant's jobs not finished yet (queued, running or cancelling)."""
    query = select(func.count()).select_from(Job).where(Job.tenant == tenant, Job.state.in_(UNFINISHED_STATES))
    return session.scalar(query) or 0


def images_in_flight(session: Session, tenant: str) -> int:
    """Open images of the tenant's unfinished jobs."""
    return sum(open_images_by_job(session, tenant))


def open_images_by_job(session: Session, tenant: str) -> list[int]:
    """Open (pending or running) images of each of the tenant's unfinished jobs."""
    query = (
        select(func.count(Image.id))
        .select_from(Job)
        .outerjoin(Image, (Image.job_id == Job.id) & Image.status.in_(OPEN_IMAGE_STATUSES))
        .where(Job.tenant == tenant, Job.state.in_(UNFINISHED_STATES))
        .group_by(Job.id)
    )
    return list(session.scalars(query))


def recent_rate(session: Session, tenant: str | None = None) -> float:
    """Images per second finished over the last RATE_WINDOW: the tenant's, or everyone's (None)."""
    query = select(func.count()).select_from(Image).where(Image.processed_at >= utcnow() - RATE_WINDOW)
    if tenant is not None:
        query = query.join(Job, Job.id == Image.job_id).where(Job.tenant == tenant)
    return (session.scalar(query) or 0) / RATE_WINDOW.total_seconds()


def _seconds_for(images: float, session: Session, tenant: str) -> int:
    # The tenant's own pace first; a tenant with nothing finished lately gets the service's.
    rate = recent_rate(session, tenant) or recent_rate(session)
    wait = images / rate if rate > 0 else UNKNOWN_WAIT
    return int(min(max(wait, SHORTEST_WAIT), LONGEST_WAIT))


def wait_for_a_job(session: Session, tenant: str) -> int:
    """Seconds until one of the tenant's unfinished jobs is likely done: its jobs share the
    tenant's throughput, so the nearest one needs its open images times the number of jobs."""
    open_counts = open_images_by_job(session, tenant)
    if not open_counts:
        return SHORTEST_WAIT
    return _seconds_for(min(open_counts) * len(open_counts), session, tenant)


def wait_for_images(session: Session, tenant: str, images: int) -> int:
    """Seconds until `images` more of the tenant's open images are likely finished."""
    return _seconds_for(max(images, 1), session, tenant)


def active_training_jobs(session: Session, tenant: str) -> int:
    """The tenant's training jobs not finished yet (queued, running or cancelling)."""
    query = (
        select(func.count())
        .select_from(TrainingJob)
        .where(TrainingJob.tenant == tenant, TrainingJob.state.in_(UNFINISHED_STATES))
    )
    return session.scalar(query) or 0


def wait_for_a_training_job(session: Session, tenant: str) -> int:
    """Seconds until one of the tenant's unfinished training jobs is likely done: its epochs left
    times its mean epoch so far, the nearest job's; a job with no finished epoch yet gives no pace."""
    query = select(TrainingJob.epochs, TrainingJob.options).where(
        TrainingJob.tenant == tenant, TrainingJob.state.in_(UNFINISHED_STATES)
    )
    waits = []
    for epochs, options in session.execute(query):
        done = epochs or []
        planned = int((options or {}).get("epochs") or len(done))
        if done and planned:
            per_epoch = sum(float(e.get("seconds") or 0) for e in done) / len(done)
            waits.append(max(planned - len(done), 0) * per_epoch)
    wait = min(waits) if waits else UNKNOWN_WAIT
    return int(min(max(wait, SHORTEST_WAIT), LONGEST_WAIT))
