"""Idempotency-Key: a retried submission gets the job its first attempt created, enqueued once."""

import hashlib
import logging
import re
from datetime import datetime

from fastapi import HTTPException, Request
from sqlalchemy import select

from imagebatch.api.enqueue import enqueue_chunks
from imagebatch.db.lifecycle import mark_enqueued, unmark_enqueued
from imagebatch.db.models import Job, JobState, utcnow
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def scoped_key(key: str, tenant: str | None) -> str:
    """What jobs.idempotency_key stores: unique per tenant, so tenants never see each other's keys."""
    return hashlib.sha256(f"{tenant or ''}\x00{key}".encode()).hexdigest()


def read_key(request: Request, tenant: str | None = None) -> str | None:
    """The request's Idempotency-Key scoped to its tenant, or None; 422 unless 1-200 visible ASCII."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.match(key):
        raise HTTPException(422, f"{HEADER}: 1 to 200 visible ASCII characters (no spaces)")
    return scoped_key(key, tenant)


def find_job(key: str) -> str | None:
    """The id of the job created with this key, finishing its submission if the API died mid-way.

    A job committed by an API that died before sending its chunks is still `queued` with no
    enqueued_at: the retry sends them now (the worker sweeper would after SUBMIT_GRACE), after
    its mark is committed, so no connection is held while the broker is talked to.
    """
    with session_scope() as session:
        job = session.scalar(select(Job).where(Job.idempotency_key == key))
        if job is None:
            return None
        if job.state != JobState.QUEUED.value or job.enqueued_at is not None:
            return job.id
        marked = utcnow()
        if not mark_enqueued(session=session, job_id=job.id, now=marked):
            return job.id
    _finish(job, marked)
    return job.id


def _finish(job: Job, marked: datetime) -> None:
    try:
        enqueue_chunks(job.id, job.model, job.total, job.chunk_size)
    except Exception as exc:
        logger.error("job %s: could not enqueue on retry: %s", job.id, exc)
        with session_scope() as session:  # so the sweeper or the next retry sends them
            unmark_enqueued(session=session, job_id=job.id, seen=marked)
        raise HTTPException(
            503, f"broker unavailable, job {job.id} not queued yet; retry", headers={"Retry-After": "5"}
        ) from exc
    logger.warning("job %s: submission finished by a retry with its %s", job.id, HEADER)


def record_enqueued(job_id: str) -> None:
    """Mark the job's chunks as sent; if this fails the sweeper re-sends them (harmless duplicates)."""
    try:
        with session_scope() as session:
            mark_enqueued(session=session, job_id=job_id)
    except Exception as exc:
        logger.warning("job %s: chunks sent but not marked enqueued: %s", job_id, exc)
