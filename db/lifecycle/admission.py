"""Admission: a tenant's limits checked and its job inserted in one transaction, its submissions in turn."""

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from imagebatch.db.tenant_load import (
    active_jobs,
    active_training_jobs,
    images_in_flight,
    wait_for_a_job,
    wait_for_a_training_job,
    wait_for_images,
)

# The first key of our PostgreSQL advisory locks: keeps them apart from anyone else's.
_LOCK_SPACE = 0x1B0A


@dataclass(frozen=True)
class TenantLimits:
    """What a tenant may have unfinished at once; 0 is unlimited."""

    active_jobs: int = 0
    images_in_flight: int = 0


class OverLimit(Exception):
    """A job the tenant may not start now; `retry_after` estimates when it could (seconds)."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail, self.retry_after = detail, retry_after


def tenant_lock_key(tenant: str) -> tuple[int, int]:
    """The two keys of the tenant's PostgreSQL advisory lock: our space, and a hash of its name."""
    return _LOCK_SPACE, int.from_bytes(hashlib.sha256(tenant.encode()).digest()[:4], "big", signed=True)


def lock_tenant(*, session: Session, tenant: str) -> None:
    """Hold the tenant's admission lock until the transaction ends, so its submissions take turns.

    PostgreSQL: a transaction-scoped advisory lock on the tenant's name. SQLite has one writer:
    the write lock taken first (BEGIN IMMEDIATE), so it must open the transaction.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(*tenant_lock_key(tenant))))
    elif dialect == "sqlite":
        driver = session.connection().connection.driver_connection
        # pysqlite begins lazily at the first write; a transaction already writing cannot be upgraded.
        if getattr(driver, "in_transaction", False):
            raise RuntimeError("lock_tenant must run before any write of its transaction on SQLite")
        session.execute(text("BEGIN IMMEDIATE"))


def admit_job(*, session: Session, tenant: str, new_images: int, limits: TenantLimits) -> None:
    """Take the tenant's lock, then raise OverLimit unless a job of `new_images` images may start.

    Call it first in the transaction that then creates the job (db.lifecycle.create_job): the
    count and the insert are one step, and a concurrent submission of the tenant waits for the commit.
    """
    if not (limits.active_jobs or limits.images_in_flight):
        return
    lock_tenant(session=session, tenant=tenant)
    if limits.active_jobs and active_jobs(session, tenant) >= limits.active_jobs:
        raise OverLimit(
            f"tenant {tenant!r} already has {limits.active_jobs} active jobs, the limit "
            f"(MAX_ACTIVE_JOBS_PER_TENANT); retry when one finishes",
            wait_for_a_job(session, tenant),
        )
    if limits.images_in_flight:
        in_flight = images_in_flight(session, tenant)
        excess = in_flight + max(new_images, 1) - limits.images_in_flight
        if excess > 0:
            raise OverLimit(
                f"tenant {tenant!r} has {in_flight} images in flight; {new_images} more would pass "
                f"the limit of {limits.images_in_flight} (MAX_IMAGES_IN_FLIGHT_PER_TENANT)",
                wait_for_images(session, tenant, excess),
            )


def admit_training_job(*, session: Session, tenant: str, most: int) -> None:
    """Take the tenant's lock, then raise OverLimit if it already has `most` unfinished training jobs
    (0: no limit). Call it first in the transaction that creates the training job."""
    if not most:
        return
    lock_tenant(session=session, tenant=tenant)
    if active_training_jobs(session, tenant) >= most:
        raise OverLimit(
            f"tenant {tenant!r} already has {most} active training jobs, the limit "
            f"(MAX_ACTIVE_JOBS_PER_TENANT); retry when one finishes",
            wait_for_a_training_job(session, tenant),
        )
