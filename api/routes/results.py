"""Result routes: filtered, cursor-paginated per-image results as JSON, and a streamed CSV export."""

import csv
import io
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.schemas import TEXT, ResultPage, content_response, error_responses
from imagebatch.core.catalog import MODELS
from imagebatch.core.result_files import csv_header, csv_row, probability_columns
from imagebatch.core.results import INCLUDABLE, embedding_dtype, output_sizes
from imagebatch.db.cursors import InvalidCursor
from imagebatch.db.models import Job, JobKind
from imagebatch.db.results import (
    STATUS_FILTERS,
    ResultFilters,
    iter_item_pages,
    label_set,
    result_item,
    result_page,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["results"])

_CSV_PAGE = 500
_CSV_PAGE_WITH_PROBABILITIES = 200


def result_filters(
    label: Annotated[str | None, Query(description="top-1 label, exact")] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_entropy: Annotated[float | None, Query(ge=0, description="nats")] = None,
    status: Annotated[
        str | None,
        Query(description=f"one of {', '.join(STATUS_FILTERS)}; pending = not finished yet (includes running)"),
    ] = None,
    errors_only: bool = False,
    correct: Annotated[
        bool | None,
        Query(description="evaluations: true = top-1 is the true label, false = misclassified (processed images)"),
    ] = None,
) -> ResultFilters:
    """The filters shared by the JSON and CSV routes; empty values mean "no filter"."""
    if label and "\x00" in label:
        raise HTTPException(422, "label: must not contain a NUL character")
    if status and status not in STATUS_FILTERS:
        raise HTTPException(422, f"status: must be one of {', '.join(STATUS_FILTERS)} (got {status!r})")
    return ResultFilters(
        label or None, min_confidence, max_confidence, max_entropy, status or None, errors_only, correct
    )


FiltersDep = Annotated[ResultFilters, Depends(result_filters)]


def _include(include: str | None) -> set[str]:
    wanted = {part.strip() for part in (include or "").split(",") if part.strip()}
    unknown = wanted - set(INCLUDABLE)
    if unknown:
        raise HTTPException(
            422, f"include: unknown value(s) {', '.join(sorted(unknown))}; allowed: {', '.join(INCLUDABLE)}"
        )
    return wanted


@router.get(
    "/{job_id}/results",
    response_model=ResultPage,
    response_model_exclude_unset=True,
    responses=error_responses(400, 404, 422, 503),
)
def list_results(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    filters: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    include: Annotated[str | None, Query(description="comma list: embedding, probabilities")] = None,
) -> dict:
    """Per-image results in index order, filtered, with an opaque keyset cursor."""
    job = get_job_or_404(session, job_id, tenant)
    wanted = _include(include)
    try:
        images, next_cursor = result_page(
            session, job_id=job_id, filters=filters, limit=limit, cursor=cursor, include=wanted
        )
    except InvalidCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    dtype = embedding_dtype(job.reproducibility)
    items = [result_item(image, embedding_dtype=dtype, include=wanted) for image in images]
    return {"items": items, "next_cursor": next_cursor}


def _csv_lines(
    job_id: str, filters: ResultFilters, header: list[str], top_k: int, probs: int, labelled: bool = False
) -> Iterator[str]:
    """The header, then rows (made from the JSON items) a page at a time: never the whole job in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield flush()
    page_size = _CSV_PAGE_WITH_PROBABILITIES if probs else _CSV_PAGE
    include = ("probabilities",) if probs else ()
    for page in iter_item_pages(job_id, filters, page_size=page_size, include=include):
        for n, item in enumerate(page, 1):
            writer.writerow(csv_row(item, top_k, probability_count=probs, labelled=labelled))
            if n % 50 == 0:
                yield flush()
        yield flush()


def _probability_names(session: Session, job: Job) -> list[str]:
    """A column per class, named by the label set of the weights the job's record names (a custom
    model's classes: a label set per weights), else of its built-in model's weights."""
    weights = (job.reproducibility or {}).get("weights") or MODELS[job.model].weights_name
    labels = label_set(session, weights)
    if not labels:
        # No worker has recorded this model's labels yet (nothing processed): index names.
        count = output_sizes(job.model, job.reproducibility)[1]
        logger.warning("no label set stored for %s; CSV probability columns use class indices", weights)
        return [f"p_{i}" for i in range(count)]
    return probability_columns(labels)


@router.get(
    "/{job_id}/results.csv",
    response_class=StreamingResponse,
    responses={
        200: content_response("CSV, one row per image", TEXT, "text/csv"),
        **error_responses(404, 409, 422, 503),
    },
)
def export_results_csv(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    filters: FiltersDep,
    probabilities: Annotated[bool, Query(description="append all class probabilities")] = False,
) -> StreamingResponse:
    """All matching results as CSV, streamed row by row."""
    job = get_job_or_404(session, job_id, tenant)
    names: list[str] = []
    if probabilities:
        if not job.store_probabilities:
            raise HTTPException(409, "Job did not store probabilities; submit with store_probabilities=true")
        names = _probability_names(session, job)
    labelled = job.kind == JobKind.EVALUATE.value
    header = csv_header(job.top_k, names, labelled=labelled)
    lines = _csv_lines(job_id, filters, header, job.top_k, len(names), labelled)
    # The generator pages with short sessions of its own; end this one before streaming starts.
    session.close()
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job_id}.csv"'},
    )
