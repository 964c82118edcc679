"""Results as a Parquet file: the CSV's columns with their types, for the dashboard's export button."""

import io
import logging

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.routes.results import FiltersDep
from imagebatch.api.schemas import BINARY, content_response, error_responses
from imagebatch.db.results import ResultFilters, csv_header, csv_row, iter_results

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["results"])


def parquet_bytes(job_id: str, filters: ResultFilters, top_k: int) -> bytes:
    """Every matching image as one row; built in memory (the CSV route streams instead)."""
    header = csv_header(top_k)
    rows = [csv_row(image, top_k) for image in iter_results(job_id, filters)]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


@router.get("/{job_id}/results.parquet", response_class=Response,
            responses={200: content_response("Parquet, one row per image", BINARY, "application/vnd.apache.parquet"),
                       **error_responses(404, 422, 503)})
async def export_results_parquet(job_id: str, session: SessionDep, tenant: TenantDep, filters: FiltersDep) -> Response:
    """All matching results as Parquet: the CSV's columns, numbers as numbers."""
    job = await run_in_threadpool(get_job_or_404, session, job_id, tenant)
    top_k = job.top_k
    session.close()
    body = await run_in_threadpool(parquet_bytes, job_id, filters, top_k)
    return Response(body, media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": f'attachment; filename="{job_id}.parquet"'})
