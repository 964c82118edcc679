"""Embedding search: the images nearest to one image by cosine similarity, brute force with numpy."""

import logging
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.routes.images import get_image_or_404
from imagebatch.api.schemas import error_responses
from imagebatch.core.results import embedding_dtype
from imagebatch.db.models import Image, ImageStatus, Job

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["images"])

# Brute force stays interactive up to about this many vectors (2048-d float32: ~400 MB at most).
MAX_CANDIDATES = 50_000


def _candidates(session: Session, job: Job, scope: str, tenant: str | None) -> list[tuple[str, int, bytes, str]]:
    """(job_id, idx, embedding bytes, dtype) of finished images: this job, or this model's jobs."""
    if scope == "job":
        jobs = [Job.id == job.id]
    else:
        # One embedding space: the same architecture and weights (a custom model's version has its own).
        same = [
            Job.model == job.model,
            Job.custom_model.is_not_distinct_from(job.custom_model),
            Job.model_version.is_not_distinct_from(job.model_version),
        ]
        jobs = same + ([Job.tenant == tenant] if tenant is not None else [])
    query = (
        select(Image.job_id, Image.idx, Image.embedding)
        .join(Job, Job.id == Image.job_id)
        .where(Image.status == ImageStatus.OK.value, Image.embedding.is_not(None), *jobs)
    )
    if scope == "model":
        query = query.order_by(Job.created_at.desc(), Image.idx)
    rows = session.execute(query.limit(MAX_CANDIDATES)).all()
    # Each job's record once, read after the rows: a job deleted in between takes its rows along.
    records = session.execute(select(Job.id, Job.reproducibility).where(*jobs)).all()
    dtypes = {job_id: embedding_dtype(repro) for job_id, repro in records}
    # (raw is never None: the query skips NULL embeddings.)
    return [(job_id, idx, raw, dtypes[job_id]) for job_id, idx, raw in rows if job_id in dtypes and raw is not None]


def nearest(query: np.ndarray, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the k rows most cosine-similar to `query`, best first, and their similarities."""
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
    scores = (matrix @ query) / np.where(norms == 0, 1.0, norms)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k else np.array([], dtype=int)
    order = top[np.argsort(-scores[top], kind="stable")]
    return order, scores[order]


@router.get("/{job_id}/images/{index}/similar", responses=error_responses(404, 409, 422, 503))
def find_similar_images(
    job_id: str,
    index: int,
    session: SessionDep,
    tenant: TenantDep,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    scope: Annotated[Literal["job", "model"], Query(description="this job, or every job of the same model")] = "job",
) -> dict[str, Any]:
    """The k images whose embeddings are nearest (cosine) to this image's; itself excluded."""
    job = get_job_or_404(session, job_id, tenant)
    image = get_image_or_404(session, job_id, index)
    if image.embedding is None:
        raise HTTPException(409, f"image {index} has no embedding (status {image.status})")
    query = np.frombuffer(image.embedding, dtype=embedding_dtype(job.reproducibility)).astype(np.float32)
    rows = [r for r in _candidates(session, job, scope, tenant) if (r[0], r[1]) != (job_id, index)]
    rows = [r for r in rows if len(r[2]) // np.dtype(r[3]).itemsize == query.size]
    if not rows:
        return {"job_id": job_id, "index": index, "scope": scope, "items": []}
    matrix = np.stack([np.frombuffer(raw, dtype=dtype).astype(np.float32) for _, _, raw, dtype in rows])
    order, scores = nearest(query, matrix, k)
    keys = [(rows[i][0], rows[i][1]) for i in order]
    details = _details(session, keys)
    items = [
        {"job_id": j, "index": i, "similarity": float(s), **details.get((j, i), {})}
        for (j, i), s in zip(keys, scores, strict=True)
    ]
    return {"job_id": job_id, "index": index, "scope": scope, "items": items}


def _details(session: Session, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Source, top-1 label and confidence of the chosen neighbours, in one query per job."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for job_id in {j for j, _ in keys}:
        indices = [i for j, i in keys if j == job_id]
        rows = session.execute(
            select(Image.idx, Image.source, Image.top1_label, Image.confidence).where(
                Image.job_id == job_id, Image.idx.in_(indices)
            )
        ).all()
        for idx, source, label, confidence in rows:
            found[(job_id, idx)] = {"source": source, "top1_label": label, "confidence": confidence}
    return found
