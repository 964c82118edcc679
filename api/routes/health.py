"""Liveness, readiness and Prometheus metrics."""

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from imagebatch.api.enqueue import check_broker
from imagebatch.api.schemas import TEXT, Health, Readiness, content_response
from imagebatch.db.session import get_engine

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def check_database() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


@router.get("/healthz", response_model=Health)
def health() -> dict[str, str]:
    """Liveness: the process answers HTTP."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"description": "Database or broker unreachable; detail names which"}},
)
async def ready() -> JSONResponse:
    """Readiness: 200 when the database answers and the broker is reachable, else 503 naming which."""
    checks: dict[str, str] = {}
    problems = []
    for name, check in (("database", check_database), ("broker", check_broker)):
        try:
            await run_in_threadpool(check)
            checks[name] = "ok"
        except Exception as exc:
            logger.warning("readiness: %s unavailable: %s", name, exc)
            checks[name] = f"unavailable: {_first_line(exc)}"
            problems.append(f"{name} unavailable: {_first_line(exc)}")
    if problems:
        return JSONResponse({"detail": "; ".join(problems), **checks}, status_code=503)
    return JSONResponse({"status": "ready", **checks})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: content_response("Prometheus text exposition format", TEXT, CONTENT_TYPE_LATEST)},
)
def metrics(request: Request) -> Response:
    """Prometheus text: HTTP requests by route, jobs by state and images by status."""
    body = generate_latest(request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
