"""Job routes: submit, list, inspect, cancel and delete jobs."""

import logging
from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from imagebatch.api import idempotency
from imagebatch.api.admission import RETRY_AFTER_BUSY
from imagebatch.api.auth import TenantDep
from imagebatch.api.bodies import Submission, SubmissionError
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.enqueue import enqueue_chunks
from imagebatch.api.limits import check_job_size, check_tenant_limits
from imagebatch.api.model_refs import ResolvedModel, resolve_model
from imagebatch.api.schemas import JobPage, error_responses, submit_request_body
from imagebatch.api.submission import read_submission
from imagebatch.core.config import settings
from imagebatch.core.logging import bind_job
from imagebatch.core.storage import get_store
from imagebatch.db import lifecycle, views, webhooks
from imagebatch.db.cursors import InvalidCursor
from imagebatch.db.models import ACTIVE_STATES, FINAL_STATES, JobState
from imagebatch.db.results import list_jobs
from imagebatch.db.session import session_scope
from imagebatch.db.views import JobView

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_STATES = tuple(state.value for state in JobState)


def load_job_view(session: Session, job_id: str, tenant: str | None = None) -> JobView:
    """The job's view, or 404 (another tenant's job included)."""
    return views.job_views(session, [get_job_or_404(session, job_id, tenant)])[0]


def _create(
    job_id: str, sub: Submission, key: str | None, fingerprint: str | None, tenant: str | None
) -> tuple[ResolvedModel, JobView]:
    """Insert the job in one transaction, the tenant's limits checked first under its lock; the
    answer's view is read in it too, so nothing after the commit can fail the submission."""
    with session_scope() as session:
        check_tenant_limits(session, tenant, len(sub.images))
        model = resolve_model(session, tenant, sub.options.model)
        job = lifecycle.create_job(
            session=session,
            job_id=job_id,
            model=model.base_model,
            top_k=sub.options.top_k,
            store_probabilities=sub.options.store_probabilities,
            precision=sub.options.precision,
            chunk_size=settings.CHUNK_SIZE,
            images=sub.images,
            skipped=sub.skipped,
            tenant=tenant,
            idempotency_key=key,
            idempotency_fingerprint=fingerprint,
            callback_url=sub.options.callback_url,
            decode=sub.options.decode,
            # Fixed at submission, so every chunk decodes alike whichever worker runs it.
            decode_mode=sub.options.resolve_decode(settings.DECODE_MODE),
            custom_model=model.custom_model,
            model_version=model.version,
        )
        session.flush()
        view = views.job_views(session, [job])[0]
    return model, view


def _withdraw(job_id: str) -> bool:
    """Delete a job whose chunks could not be sent; False if that failed too, or it was taken on."""
    try:
        with session_scope() as session:
            withdrawn = lifecycle.withdraw_job(session=session, job_id=job_id)
    except Exception as exc:
        logger.error("job %s: could not withdraw it either (the sweeper will send it): %s", job_id, exc)
        return False
    if withdrawn:
        get_store().delete_prefix(f"{job_id}/")
    return withdrawn


def _view(job_id: str, tenant: str | None = None) -> JobView:
    with session_scope() as session:
        return load_job_view(session, job_id, tenant)


def _admit(tenant: str | None) -> None:
    """429 before reading a body the tenant could not submit anyway."""
    with session_scope() as session:
        check_tenant_limits(session, tenant)


async def _existing(response: Response, job_id: str, tenant: str | None) -> JobView:
    """200 with the job an earlier attempt with the same Idempotency-Key created."""
    response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return await run_in_threadpool(_view, job_id, tenant)


@router.post(
    "",
    status_code=202,
    response_model=JobView,
    openapi_extra=submit_request_body(),
    responses=error_responses(400, 401, 408, 413, 415, 422, 429, 503),
)
async def submit_job(request: Request, response: Response, tenant: TenantDep) -> JobView:
    """Submit images (multipart `files` or `archive`, or JSON `uris`); answers at once, queued."""
    key = idempotency.read_key(request, tenant)
    # No step below holds a pooled connection while it waits on the client, storage or broker.
    async with request.app.state.submission_gate.turn():
        prior = await run_in_threadpool(idempotency.find_prior, key) if key else None
        if prior is None:
            await run_in_threadpool(_admit, tenant)
        job_id = uuid4().hex
        bind_job(job_id)
        try:
            sub = await read_submission(request, job_id)
        except SubmissionError as exc:
            raise HTTPException(exc.status_code, exc.detail) from exc
        fingerprint = idempotency.fingerprint(sub) if key else None
        if key and prior is not None:  # a retry: its body was read only to compare it with the first
            await run_in_threadpool(get_store().delete_prefix, f"{job_id}/")
            return await _replay(request, response, key, prior, fingerprint, tenant)
        created = await _record(job_id, sub, key, fingerprint, tenant)
        if isinstance(created, idempotency.Prior):  # a concurrent attempt with the same key won
            assert key is not None  # only a keyed submission can lose to another
            return await _replay(request, response, key, created, fingerprint, tenant)
        model, view = created
        await _send(job_id, model, len(sub.images))
    logger.info(
        "job %s: %d image(s) queued for %s (%d input(s) skipped)", job_id, len(sub.images), model.ref, len(sub.skipped)
    )
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return view


async def _replay(
    request: Request,
    response: Response,
    key: str,
    prior: idempotency.Prior,
    fingerprint: str | None,
    tenant: str | None,
) -> JobView:
    """200 with the job the key's first submission created, if this one asks for the same; else 422."""
    idempotency.check_same_body(request, prior, fingerprint or "")
    await run_in_threadpool(idempotency.find_job, key)  # sends its chunks if that API died before it could
    return await _existing(response, prior.job_id, tenant)


Created = tuple[ResolvedModel, JobView]


async def _record(
    job_id: str, sub: Submission, key: str | None, fingerprint: str | None, tenant: str | None
) -> Created | idempotency.Prior:
    """Create the job (its blobs removed if that fails); the prior job of a concurrent attempt with
    the same Idempotency-Key, if that is why it failed."""
    try:
        check_job_size(len(sub.images))
        return await run_in_threadpool(_create, job_id, sub, key, fingerprint, tenant)
    except Exception as exc:
        await run_in_threadpool(get_store().delete_prefix, f"{job_id}/")
        if key and isinstance(exc, IntegrityError) and (prior := await run_in_threadpool(idempotency.find_prior, key)):
            return prior
        raise


async def _send(job_id: str, model: ResolvedModel, total: int) -> None:
    """Send the committed job's chunks; if the broker fails, withdraw the job and answer 503 (or,
    when it cannot be withdrawn, keep it: the sweeper sends it, and the answer is its 202)."""
    try:
        await run_in_threadpool(enqueue_chunks, job_id, model.base_model, total, settings.CHUNK_SIZE)
    except Exception as exc:
        logger.error("job %s: could not enqueue its chunks: %s", job_id, exc)
        if await run_in_threadpool(_withdraw, job_id):
            raise HTTPException(
                503, f"broker unavailable, job not created: {exc}", headers={"Retry-After": str(RETRY_AFTER_BUSY)}
            ) from exc
        return
    await run_in_threadpool(idempotency.record_enqueued, job_id)


@router.get("", name="list_jobs", response_model=JobPage, responses=error_responses(400, 422, 503))
def list_all_jobs(
    session: SessionDep,
    tenant: TenantDep,
    state: Annotated[str | None, Query(description=f"only jobs in this state: {', '.join(_STATES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobPage:
    """List jobs, newest first, with cursor pagination."""
    if state and state not in _STATES:
        raise HTTPException(422, f"state: must be one of {', '.join(_STATES)} (got {state!r})")
    try:
        page, next_cursor = list_jobs(session, state=state or None, limit=limit, cursor=cursor, tenant=tenant)
    except InvalidCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    return JobPage(items=views.job_views(session, page), next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobView, responses=error_responses(404, 422, 503))
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobView:
    """One job: state, counts, progress, throughput, ETA, timestamps and reproducibility record."""
    return load_job_view(session, job_id, tenant)


@router.post("/{job_id}/cancel", status_code=202, response_model=JobView, responses=error_responses(404, 409, 422, 503))
def cancel_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobView:
    """Cancel a job: pending images are cancelled now, chunks already running finish."""
    job = get_job_or_404(session, job_id, tenant)
    if job.state in FINAL_STATES:
        raise HTTPException(409, f"Job is already {job.state}; only queued or running jobs can be cancelled")
    if job.state in ACTIVE_STATES:
        lifecycle.request_cancel(session=session, job_id=job_id)
        session.commit()
        webhooks.deliver_in_background(job_id)  # only if the cancel already finished the job
    session.expire_all()
    return load_job_view(session, job_id, tenant)


@router.delete("/{job_id}", status_code=204, responses=error_responses(404, 422, 503))
def delete_job(job_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete a job, its result rows and its uploaded images (cancelling it first if active)."""
    job = get_job_or_404(session, job_id, tenant)
    if job.state in ACTIVE_STATES:
        lifecycle.request_cancel(session=session, job_id=job_id)
        session.commit()
    lifecycle.delete_job(session=session, job_id=job_id)
    session.commit()
    get_store().delete_prefix(f"{job_id}/")
    return Response(status_code=204)
