"""Training-job routes: submit a labelled set to train a model, watch its epochs, list, cancel, delete."""

import io
import json
import logging
from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from imagebatch.api.auth import TenantDep
from imagebatch.api.bodies import SubmissionError
from imagebatch.api.deps import SessionDep
from imagebatch.api.enqueue import celery_app
from imagebatch.api.labelled import LabelledSet, read_labelled
from imagebatch.api.limits import check_training_limits
from imagebatch.api.schemas import describe_validation_error, error_responses, labelled_request_body
from imagebatch.core.datasets import check_classes, check_given_split
from imagebatch.core.logging import bind_job
from imagebatch.core.storage import get_store
from imagebatch.core.training import (
    GIVEN_SPLIT_FORMAT,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    TrainingOptions,
    send_training,
    training_prefix,
)
from imagebatch.db import lifecycle
from imagebatch.db.cursors import InvalidCursor
from imagebatch.db.models import UNFINISHED_STATES, JobState, TrainingJob
from imagebatch.db.session import session_scope
from imagebatch.db.training_views import TrainingJobPage, TrainingJobView, list_training_jobs, training_job_view

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/training-jobs", tags=["training"])
_STATES = tuple(state.value for state in JobState)
OPTION_FIELDS = tuple(TrainingOptions.model_fields)
_GIVEN_SPLIT = "; or train/ and val/ (or validation/) folders in that layout: validated on val/, val_fraction unused"


def get_training_job_or_404(session: Session, job_id: str, tenant: str | None) -> TrainingJob:
    """The training job, or 404 (another tenant's too, never 403)."""
    job = session.get(TrainingJob, job_id)
    if job is None or (tenant is not None and job.tenant != tenant):
        raise HTTPException(404, "Training job not found")
    return job


def _options(raw: dict) -> TrainingOptions:
    try:
        return TrainingOptions.model_validate(raw)
    except ValidationError as exc:
        raise SubmissionError(422, describe_validation_error(exc)) from exc


def _check(labelled: LabelledSet) -> None:
    """The quick class check at submission (the worker's data step checks every image)."""
    try:
        if labelled.val is None:
            check_classes(labelled.counts(), what="the training set")
        else:
            check_given_split(labelled.counts(), labelled.val.counts(), labelled.val_folder)
    except ValueError as exc:
        raise SubmissionError(422, str(exc)) from exc


def _admit_now(tenant: str | None) -> None:
    """The same check before the upload, so a tenant at its limit is not made to send its archive first."""
    with session_scope() as session:
        check_training_limits(session, tenant)


def _files(labelled: LabelledSet) -> list[dict[str, str]]:
    pairs = zip(labelled.paths, labelled.images, strict=True)
    return [{"path": path, "location": image.location} for path, image in pairs]


def _create(job_id: str, options: TrainingOptions, labelled: LabelledSet, tenant: str | None) -> None:
    """The manifest beside the data, then the row (queued): a row never points at missing data."""
    prefix = training_prefix(job_id)
    manifest: dict = {"format": MANIFEST_FORMAT, "classes": labelled.classes, "files": _files(labelled)}
    if labelled.val is not None:
        manifest.update(format=GIVEN_SPLIT_FORMAT, val_files=_files(labelled.val))
    get_store().write_stream(f"{prefix}{MANIFEST_NAME}", io.BytesIO(json.dumps(manifest).encode()))
    with session_scope() as session:
        check_training_limits(session, tenant)  # again, now atomic with the insert: submissions take turns
        lifecycle.create_training_job(
            session=session,
            job_id=job_id,
            options=options.model_dump(),
            classes=labelled.classes,
            image_count=len(labelled.images) + (len(labelled.val.images) if labelled.val else 0),
            data_prefix=prefix,
            tenant=tenant,
            skipped=labelled.skipped,
        )


def _enqueue(job_id: str) -> None:
    send_training(celery_app(), job_id)
    with session_scope() as session:
        lifecycle.mark_training_enqueued(session=session, job_id=job_id)


def _view(job_id: str) -> TrainingJobView:
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        if job is None:  # deleted between its creation and this answer
            raise HTTPException(404, f"Training job not found: {job_id}")
        return training_job_view(job)


@router.post(
    "",
    status_code=202,
    response_model=TrainingJobView,
    openapi_extra=labelled_request_body(TrainingOptions, required=("name",), archive_note=_GIVEN_SPLIT),
    responses=error_responses(401, 413, 415, 422, 429, 503),
)
async def create_training_job(request: Request, response: Response, tenant: TenantDep) -> TrainingJobView:
    """Train a model on a labelled set: multipart `archive` (ImageFolder) or JSON `uris` + `labels`."""
    await run_in_threadpool(_admit_now, tenant)
    job_id = uuid4().hex
    bind_job(job_id)
    prefix = training_prefix(job_id)
    try:
        labelled = await read_labelled(request, f"{prefix}data", OPTION_FIELDS, allow_split=True)
        options = _options(labelled.options)
        _check(labelled)
        await run_in_threadpool(_create, job_id, options, labelled, tenant)
    except SubmissionError as exc:
        await run_in_threadpool(get_store().delete_prefix, prefix)
        raise HTTPException(exc.status_code, exc.detail) from exc
    except Exception:
        await run_in_threadpool(get_store().delete_prefix, prefix)
        raise
    try:
        await run_in_threadpool(_enqueue, job_id)
    except Exception as exc:
        logger.error("training job %s: could not be queued: %s", job_id, exc)
        # The sweeper sends it once the broker is back (its enqueued_at is still unset).
    logger.info(
        "training job %s: %d image(s), %d classes, model %r",
        job_id,
        len(labelled.images),
        len(labelled.classes),
        options.name,
    )
    response.headers["Location"] = f"/v1/training-jobs/{job_id}"
    return await run_in_threadpool(_view, job_id)


@router.get("", name="list_training_jobs", response_model=TrainingJobPage, responses=error_responses(422, 503))
def list_all_training_jobs(
    session: SessionDep,
    tenant: TenantDep,
    state: Annotated[str | None, Query(description=f"only jobs in this state: {', '.join(_STATES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> TrainingJobPage:
    """List training jobs, newest first (without their dataset report and training record)."""
    if state and state not in _STATES:
        raise HTTPException(422, f"state: must be one of {', '.join(_STATES)} (got {state!r})")
    try:
        page, next_cursor = list_training_jobs(session, tenant=tenant, state=state or None, limit=limit, cursor=cursor)
    except InvalidCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    return TrainingJobPage(items=[training_job_view(job, full=False) for job in page], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=TrainingJobView, responses=error_responses(404, 503))
def get_training_job(job_id: str, session: SessionDep, tenant: TenantDep) -> TrainingJobView:
    """One training job: state, progress, epochs so far, best epoch, dataset report, record, model."""
    return training_job_view(get_training_job_or_404(session, job_id, tenant))


@router.post("/{job_id}/cancel", status_code=202, response_model=TrainingJobView, responses=error_responses(404, 409))
def cancel_training_job(job_id: str, session: SessionDep, tenant: TenantDep) -> TrainingJobView:
    """Cancel: a queued job at once; a running one stops at its next batch and registers nothing."""
    job = get_training_job_or_404(session, job_id, tenant)
    if job.state not in UNFINISHED_STATES:
        raise HTTPException(409, f"Training job is already {job.state}; only queued or running jobs can be cancelled")
    lifecycle.request_training_cancel(session=session, job_id=job_id)
    session.commit()
    session.expire_all()
    return training_job_view(get_training_job_or_404(session, job_id, tenant))


@router.delete("/{job_id}", status_code=204, responses=error_responses(404, 503))
def delete_training_job(job_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete a training job and its uploaded data and checkpoint (cancelling it first); its model stays."""
    job = get_training_job_or_404(session, job_id, tenant)
    prefix = job.data_prefix
    lifecycle.request_training_cancel(session=session, job_id=job_id)
    lifecycle.delete_training_job(session=session, job_id=job_id)
    session.commit()
    get_store().delete_prefix(prefix)
    return Response(status_code=204)
