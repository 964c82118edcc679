"""Idempotency-Key: a retried submission gets the job its first attempt created, enqueued once;
the same key with a different body is refused."""

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from fastapi import HTTPException, Request
from sqlalchemy import select

from imagebatch.api.admission import RETRY_AFTER_BUSY
from imagebatch.api.bodies import Submission
from imagebatch.api.enqueue import enqueue_chunks
from imagebatch.db.lifecycle import mark_enqueued, unmark_enqueued
from imagebatch.db.models import Job, JobState, utcnow
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


@dataclass(frozen=True)
class Prior:
    """The job an earlier submission with the key created, and that submission's fingerprint."""

    job_id: str
    fingerprint: str | None  # None for a job from before fingerprints were kept


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


def fingerprint(sub: Submission) -> str:
    """SHA-256 over what the submission asks for: the options as validated (defaults filled in),
    each image's name with its size and digest (uploads) or its URI, and the skipped inputs."""
    digests = sub.digests or [""] * len(sub.images)  # a URI list: the URIs say it all
    canonical = {
        "options": sub.options.model_dump(mode="json"),
        "images": [[image.source, digest] for image, digest in zip(sub.images, digests, strict=True)],
        "skipped": sub.skipped,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def find_prior(key: str) -> Prior | None:
    with session_scope() as session:
        row = session.execute(select(Job.id, Job.idempotency_fingerprint).where(Job.idempotency_key == key)).first()
    return None if row is None else Prior(row[0], row[1])


def check_same_body(request: Request, prior: Prior, submitted: str) -> None:
    """422 naming the key when it was first used with a different body (as payment APIs answer)."""
    if prior.fingerprint is not None and prior.fingerprint != submitted:
        raise HTTPException(
            422,
            f"{HEADER} {request.headers.get(HEADER)!r} was already used for job {prior.job_id} with a different "
            "request (other images or options); send a new key for a new job",
        )


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
        detail = f"broker unavailable, job {job.id} not queued yet; retry"
        raise HTTPException(503, detail, headers={"Retry-After": str(RETRY_AFTER_BUSY)}) from exc
    logger.warning("job %s: submission finished by a retry with its %s", job.id, HEADER)


def record_enqueued(job_id: str) -> None:
    """Mark the job's chunks as sent; if this fails the sweeper re-sends them (harmless duplicates)."""
    try:
        with session_scope() as session:
            mark_enqueued(session=session, job_id=job_id)
    except Exception as exc:
        logger.warning("job %s: chunks sent but not marked enqueued: %s", job_id, exc)
