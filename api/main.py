"""The FastAPI application: routes, error handlers, metrics middleware, migrations at start-up."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from uvicorn.config import LOGGING_CONFIG

from imagebatch.api.admission import RETRY_AFTER_BUSY, SubmissionGate
from imagebatch.api.auth import require_tenant
from imagebatch.api.metrics import HttpMetrics, make_registry
from imagebatch.api.routes import (
    evaluations,
    exports,
    gradcam,
    health,
    images,
    jobs,
    models,
    parquet,
    results,
    similar,
    training,
)
from imagebatch.api.routes.ui import mount_dashboard
from imagebatch.api.schemas import describe_validation_error, error_responses
from imagebatch.core import __version__
from imagebatch.core.config import settings
from imagebatch.core.logging import JobLogContext, configure_logging
from imagebatch.db.migrate import upgrade_to_head

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Blocking work (database, storage, broker) runs on these threads; one connection each at most,
    # so with as many threads as pooled connections none waits for a connection.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
    if settings.AUTO_MIGRATE:
        try:
            await run_in_threadpool(upgrade_to_head)
        except OperationalError as exc:
            # Keep serving: /healthz stays up and /readyz and every query report the outage.
            logger.error("database unavailable at start-up, migrations not applied: %s", exc)
    yield


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    # Registered for RequestValidationError only; Starlette types every handler for Exception.
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": describe_validation_error(exc)}, status_code=422)


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationalError)  # registered for OperationalError only
    reason = str(exc.orig or exc).strip().splitlines()
    logger.warning("database unavailable: %s", reason[0] if reason else exc)
    return JSONResponse(
        {"detail": f"database unavailable: {reason[0] if reason else exc}"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_BUSY)},
    )


async def _pool_exhausted(_request: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection stayed busy for DB_POOL_TIMEOUT: overload, which a client should retry.
    logger.warning("no database connection free within %gs: %s", settings.DB_POOL_TIMEOUT, exc)
    return JSONResponse(
        {"detail": "server busy: no database connection free (IMAGEBATCH_DB_POOL_SIZE); retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_BUSY)},
    )


def operation_id(route: APIRoute) -> str:
    """OpenAPI operation ids are the route names (submit_job, export_results_csv), so generated
    clients get short function names instead of FastAPI's name + path + method."""
    return route.name


def _include_v1(app: FastAPI, router: APIRouter) -> None:
    # Every /v1 route needs an API key (unless auth is off); health and metrics stay open.
    app.include_router(router, dependencies=[Depends(require_tenant)], responses=error_responses(401))


def create_app() -> FastAPI:
    """A fresh application with its own metrics registry."""
    app = FastAPI(
        title="imagebatch",
        version=__version__,
        description="Asynchronous bulk image classification with ResNet: submit, watch, query, export; "
        "train, evaluate and serve custom models.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.metrics_registry = make_registry()
    app.state.submission_gate = SubmissionGate(settings.MAX_SUBMISSIONS_IN_FLIGHT, settings.SUBMIT_QUEUE_TIMEOUT)
    app.add_middleware(HttpMetrics, registry=app.state.metrics_registry)
    app.add_middleware(JobLogContext)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    _include_v1(app, jobs.router)
    _include_v1(app, results.router)
    app.include_router(health.router)
    _include_v1(app, images.router)
    _include_v1(app, similar.router)
    _include_v1(app, parquet.router)
    _include_v1(app, training.router)
    _include_v1(app, models.router)
    _include_v1(app, evaluations.router)
    _include_v1(app, exports.router)
    _include_v1(app, gradcam.router)
    mount_dashboard(app)
    return app


app = create_app()


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve the API with uvicorn (what `imagebatch serve` calls)."""
    configure_logging(settings.LOG_LEVEL)
    uvicorn.run(
        "imagebatch.api.main:app",
        host=host or settings.API_HOST,
        port=port or settings.API_PORT,
        log_level=settings.LOG_LEVEL.lower(),
        # With JSON logs, uvicorn's own loggers propagate to our root handler instead of theirs.
        log_config=None if settings.LOG_JSON else LOGGING_CONFIG,
    )
