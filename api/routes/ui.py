"""The browser dashboard: the page at `/`, its static files, and the job summary its charts draw."""

import logging
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.schemas import error_responses
from imagebatch.db.models import Image, ImageStatus

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["dashboard"])
summary_router = APIRouter(prefix="/v1/jobs", tags=["results"])

_TOP_LABELS = 15


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """The single-page dashboard (no build step: plain HTML, CSS and ES modules)."""
    # no-cache: a new release's page must not pair with stale cached scripts.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _histogram(values: list[float], low: float, high: float, bins: int) -> dict[str, Any]:
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins, range=(low, high))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


@summary_router.get("/{job_id}/summary", responses=error_responses(404, 422, 503))
def get_job_summary(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    bins: Annotated[int, Query(ge=2, le=100)] = 20,
) -> dict[str, Any]:
    """Top-1 label counts, confidence and entropy histograms, and error categories of a job."""
    job = get_job_or_404(session, job_id, tenant)
    labels = session.execute(
        select(Image.top1_label, func.count())
        .where(Image.job_id == job_id, Image.top1_label.is_not(None))
        .group_by(Image.top1_label)
        .order_by(func.count().desc(), Image.top1_label)
        .limit(_TOP_LABELS)
    ).all()
    distinct = session.scalar(select(func.count(func.distinct(Image.top1_label))).where(Image.job_id == job_id))
    errors = session.execute(
        select(Image.error_category, func.count())
        .where(Image.job_id == job_id, Image.status == ImageStatus.ERROR.value)
        .group_by(Image.error_category)
    ).all()
    rows = session.execute(
        select(Image.confidence, Image.entropy).where(
            Image.job_id == job_id, Image.status == ImageStatus.OK.value, Image.confidence.is_not(None)
        )
    ).all()
    confidences = [c for c, _ in rows if c is not None]  # all of them: the query skips NULLs
    entropies = [e for _, e in rows if e is not None]
    # ln(classes) nats, a uniform guess over the model's classes, is the natural top: ImageNet's 1,000
    # until a worker has recorded the model (a custom model's own count from then on).
    classes = (job.reproducibility or {}).get("num_classes") or 1000
    top_entropy = max([float(np.log(classes)), *entropies])
    return {
        "job_id": job_id,
        "processed": len(rows),
        "labels": [{"label": label, "count": count} for label, count in labels],
        "distinct_labels": distinct or 0,
        "errors": [{"category": category or "unknown", "count": count} for category, count in errors],
        "confidence": _histogram(confidences, 0.0, 1.0, bins),
        "entropy": _histogram(entropies, 0.0, top_entropy, bins),
    }


def mount_dashboard(app: FastAPI) -> None:
    """Serve the page and /static; both public (the page asks for an API key itself)."""
    app.include_router(router)
    app.include_router(summary_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
