"""Per-tenant limits on concurrent jobs and images in flight: 429 with Retry-After when over."""

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagebatch.core.config import settings
from imagebatch.db.models import OPEN_IMAGE_STATUSES, UNFINISHED_STATES, Image, Job

# How long a client should wait before retrying; jobs finish at their own pace, so a fixed hint.
RETRY_AFTER_SECONDS = 30


def _too_many(detail: str) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def active_jobs(session: Session, tenant: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Job).where(Job.tenant == tenant, Job.state.in_(UNFINISHED_STATES))
        )
        or 0
    )


def images_in_flight(session: Session, tenant: str) -> int:
    """Images of the tenant's jobs not finished yet (pending or running)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Image)
            .join(Job, Job.id == Image.job_id)
            .where(Job.tenant == tenant, Job.state.in_(UNFINISHED_STATES), Image.status.in_(OPEN_IMAGE_STATUSES))
        )
        or 0
    )


def check_job_size(count: int) -> None:
    """413 if one job alone is over a limit it could never get under by waiting."""
    limit = settings.MAX_IMAGES_PER_JOB
    if count > limit:
        raise HTTPException(413, f"{count} images in one job is over the limit of {limit} (MAX_IMAGES_PER_JOB)")
    flight = settings.MAX_IMAGES_IN_FLIGHT_PER_TENANT
    if flight and count > flight:
        raise HTTPException(
            413, f"{count} images in one job is over the limit of {flight} (MAX_IMAGES_IN_FLIGHT_PER_TENANT)"
        )


def check_tenant_limits(session: Session, tenant: str | None, new_images: int = 0) -> None:
    """429 if `tenant` may not start a job of `new_images` images now; no limits when auth is off."""
    if tenant is None:
        return
    most_jobs = settings.MAX_ACTIVE_JOBS_PER_TENANT
    if most_jobs and active_jobs(session, tenant) >= most_jobs:
        raise _too_many(
            f"tenant {tenant!r} already has {most_jobs} active jobs, the limit "
            f"(MAX_ACTIVE_JOBS_PER_TENANT); retry when one finishes"
        )
    most_images = settings.MAX_IMAGES_IN_FLIGHT_PER_TENANT
    if most_images:
        in_flight = images_in_flight(session, tenant)
        if in_flight + max(new_images, 1) > most_images:
            raise _too_many(
                f"tenant {tenant!r} has {in_flight} images in flight; {new_images} more would pass "
                f"the limit of {most_images} (MAX_IMAGES_IN_FLIGHT_PER_TENANT)"
            )
