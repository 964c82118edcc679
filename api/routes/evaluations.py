"""Evaluation routes: classify a labelled set with a model, then its accuracy, per-class scores and confusion."""

import logging
from uuid import uuid4

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from imagebatch.api.auth import TenantDep
from imagebatch.api.bodies import SubmissionError, parse_options
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.enqueue import enqueue_chunks
from imagebatch.api.idempotency import record_enqueued
from imagebatch.api.labelled import LabelledSet, read_labelled
from imagebatch.api.limits import check_job_size, check_tenant_limits
from imagebatch.api.model_refs import ResolvedModel, resolve_model
from imagebatch.api.schemas import error_responses, labelled_request_body
from imagebatch.core.config import settings
from imagebatch.core.logging import bind_job
from imagebatch.core.options import JobOptions
from imagebatch.core.storage import get_store
from imagebatch.db import lifecycle
from imagebatch.db.evaluations import EvaluationView, evaluation_view
from imagebatch.db.models import JobKind
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])
OPTION_FIELDS = tuple(JobOptions.model_fields)
TOP_K = 5  # an evaluation keeps at least 5 predictions per image, for its top-5 accuracy


def _unknown_classes(labelled: LabelledSet, model: ResolvedModel) -> None:
    """422 naming the first class (folder or label) that is not one of the model's classes."""
    known = set(model.classes)
    for name in labelled.classes:
        if name not in known and labelled.counts()[name]:
            listed = ", ".join(model.classes[:10]) + (", ..." if len(model.classes) > 10 else "")
            raise SubmissionError(
                422, f"class {name!r} is not a class of model {model.ref} ({len(known)} classes: {listed})"
            )


def _create(job_id: str, labelled: LabelledSet, tenant: str | None) -> ResolvedModel:
    if "model" not in labelled.options:
        raise SubmissionError(422, "model: required (the model to evaluate: a built-in or custom model's name)")
    options = parse_options(labelled.options)
    check_job_size(len(labelled.images))
    with session_scope() as session:
        check_tenant_limits(session, tenant, len(labelled.images))
        model = resolve_model(session, tenant, options.model)
        _unknown_classes(labelled, model)
        lifecycle.create_job(
            session=session,
            job_id=job_id,
            model=model.base_model,
            top_k=min(max(options.top_k, TOP_K), settings.MAX_TOP_K),
            store_probabilities=options.store_probabilities,
            precision=options.precision,
            chunk_size=settings.CHUNK_SIZE,
            images=labelled.images,
            skipped=labelled.skipped,
            tenant=tenant,
            callback_url=options.callback_url,
            kind=JobKind.EVALUATE.value,
            custom_model=model.custom_model,
            model_version=model.version,
        )
    return model


def _fail(job_id: str, message: str) -> None:
    with session_scope() as session:
        lifecycle.fail_job(session=session, job_id=job_id, message=message)


def _view(job_id: str) -> EvaluationView:
    with session_scope() as session:
        return evaluation_view(session, get_job_or_404(session, job_id))


@router.post(
    "",
    status_code=202,
    response_model=EvaluationView,
    openapi_extra=labelled_request_body(JobOptions, required=("model",)),
    responses=error_responses(401, 413, 415, 422, 429, 503),
)
async def create_evaluation(request: Request, response: Response, tenant: TenantDep) -> EvaluationView:
    """Evaluate a model on a labelled set (an ImageFolder `archive`, or JSON `uris` + `labels`): a job
    whose images carry their true label; its results are queryable like any job's."""
    job_id = uuid4().hex
    bind_job(job_id)
    try:
        labelled = await read_labelled(request, job_id, OPTION_FIELDS)
        if not labelled.images:
            raise SubmissionError(422, "no labelled images: put the images in one folder per class")
        model = await run_in_threadpool(_create, job_id, labelled, tenant)
    except SubmissionError as exc:
        await run_in_threadpool(get_store().delete_prefix, f"{job_id}/")
        raise HTTPException(exc.status_code, exc.detail) from exc
    except Exception:
        await run_in_threadpool(get_store().delete_prefix, f"{job_id}/")
        raise
    try:
        await run_in_threadpool(enqueue_chunks, job_id, model.base_model, len(labelled.images), settings.CHUNK_SIZE)
    except Exception as exc:
        logger.error("evaluation %s: could not enqueue its chunks: %s", job_id, exc)
        message = f"broker unavailable, evaluation could not be queued: {exc}"
        await run_in_threadpool(_fail, job_id, message)
        raise HTTPException(503, f"{message} (evaluation {job_id} marked failed)") from exc
    await run_in_threadpool(record_enqueued, job_id)
    logger.info(
        "evaluation %s: %d image(s) of %d classes with %s",
        job_id,
        len(labelled.images),
        len(labelled.classes),
        model.ref,
    )
    response.headers["Location"] = f"/v1/evaluations/{job_id}"
    return await run_in_threadpool(_view, job_id)


@router.get("/{job_id}", response_model=EvaluationView, responses=error_responses(404, 503))
def get_evaluation(job_id: str, session: SessionDep, tenant: TenantDep) -> EvaluationView:
    """The evaluation job with top-1/top-5 accuracy, per-class precision/recall/F1/support and the
    confusion matrix (true class by row) over its images processed so far; per-image results at
    GET /v1/jobs/{id}/results (`correct=false`: the misclassified ones)."""
    job = get_job_or_404(session, job_id, tenant)
    if job.kind != JobKind.EVALUATE.value:
        raise HTTPException(404, "Evaluation not found (that job is a classification; see GET /v1/jobs/{id})")
    return evaluation_view(session, job)
