"""Prometheus metrics: HTTP requests by route, plus jobs and images by state read at scrape time."""

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagebatch.api.queue_metrics import QueueCollector
from imagebatch.db.models import Image, ImageStatus, Job, JobState
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)


class DatabaseCollector(Collector):
    """Counts straight from the database, so every API replica reports the same truth."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("imagebatch_database_up", "1 if the last scrape could query the database")
        try:
            with session_scope() as session:
                jobs = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
                images = dict(session.execute(select(Image.status, func.count()).group_by(Image.status)).all())
        except SQLAlchemyError as exc:
            logger.warning("metrics: database query failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        job_gauge = GaugeMetricFamily("imagebatch_jobs", "Jobs by state", labels=["state"])
        for state in JobState:
            job_gauge.add_metric([state.value], jobs.get(state.value, 0))
        yield job_gauge
        image_gauge = GaugeMetricFamily("imagebatch_images", "Images by status", labels=["status"])
        for status in ImageStatus:
            image_gauge.add_metric([status.value], images.get(status.value, 0))
        yield image_gauge


class HttpMetrics:
    """Pure ASGI middleware (works with streaming responses) timing every HTTP request."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "imagebatch_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "imagebatch_http_request_duration_seconds",
            "HTTP request latency until the last byte",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The route template (not the raw path) keeps label cardinality bounded.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def make_registry() -> CollectorRegistry:
    """A registry per app (not the global one), so several apps can live in one process."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    registry.register(QueueCollector())
    return registry
