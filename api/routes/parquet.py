"""Results as a Parquet file in core.result_files' schema, streamed a row group per page of results."""

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.routes.results import FiltersDep
from imagebatch.api.schemas import BINARY, content_response, error_responses
from imagebatch.core.result_files import arrow_schema, parquet_chunks
from imagebatch.core.results import embedding_dtype, output_sizes
from imagebatch.db.results import iter_item_pages

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["results"])

# Rows per page and row group: a resnet50 page with probabilities holds ~250 × 3048 floats.
_PAGE = 250


@router.get(
    "/{job_id}/results.parquet",
    response_class=StreamingResponse,
    responses={
        200: content_response("Parquet, one row per image", BINARY, "application/vnd.apache.parquet"),
        **error_responses(404, 409, 422, 503),
    },
)
def export_results_parquet(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    filters: FiltersDep,
    probabilities: Annotated[bool, Query(description="add all class probabilities")] = False,
) -> StreamingResponse:
    """All matching results as Parquet: one typed row per image, with its embedding."""
    job = get_job_or_404(session, job_id, tenant)
    if probabilities and not job.store_probabilities:
        raise HTTPException(409, "Job did not store probabilities; submit with store_probabilities=true")
    embedding_size, num_classes = output_sizes(job.model, job.reproducibility)
    schema = arrow_schema(embedding_size=embedding_size, probability_count=num_classes if probabilities else 0)
    include = ("embedding", "probabilities") if probabilities else ("embedding",)
    pages = iter_item_pages(
        job_id, filters, page_size=_PAGE, include=include, embedding_dtype=embedding_dtype(job.reproducibility)
    )
    # The generator pages with short sessions of its own; end this one before streaming starts.
    session.close()
    return StreamingResponse(
        parquet_chunks(pages, schema),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{job_id}.parquet"'},
    )
