"""Per-tenant limits on concurrent jobs and images in flight: 429 with Retry-After when over."""

from fastapi import HTTPException
from sqlalchemy.orm import Session

from imagebatch.core.config import settings
from imagebatch.db.lifecycle import OverLimit, TenantLimits, admit_job, admit_training_job


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
    """429 if `tenant` may not start a job of `new_images` images now; no limits when auth is off.

    Run it first in the transaction that creates the job: it holds the tenant's admission lock
    until that transaction ends, so concurrent submissions cannot all pass the same count.
    """
    if tenant is None:
        return
    limits = TenantLimits(settings.MAX_ACTIVE_JOBS_PER_TENANT, settings.MAX_IMAGES_IN_FLIGHT_PER_TENANT)
    try:
        admit_job(session=session, tenant=tenant, new_images=new_images, limits=limits)
    except OverLimit as exc:
        raise _too_many(exc) from exc


def check_training_limits(session: Session, tenant: str | None) -> None:
    """429 if `tenant` already has MAX_ACTIVE_JOBS_PER_TENANT unfinished training jobs; like
    check_tenant_limits, under the tenant's lock when run in the transaction that creates the job."""
    if tenant is None:
        return
    try:
        admit_training_job(session=session, tenant=tenant, most=settings.MAX_ACTIVE_JOBS_PER_TENANT)
    except OverLimit as exc:
        raise _too_many(exc) from exc


def _too_many(refusal: OverLimit) -> HTTPException:
    # The wait comes from the tenant's queue: its open work and recent pace.
    return HTTPException(429, refusal.detail, headers={"Retry-After": str(refusal.retry_after)})
