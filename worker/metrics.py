"""Prometheus metrics of one worker process: chunk latency by stage, batch sizes, images done."""

import logging

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

from imagebatch.worker.timing import ChunkReport

logger = logging.getLogger(__name__)

# Stage latencies of a 32-image chunk range from tens of milliseconds (GPU) to tens of seconds (CPU).
_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class WorkerMetrics:
    """The worker's instruments, registered in one registry (the process default unless given)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.stage_seconds = Histogram(
            "imagebatch_worker_chunk_stage_seconds",
            "Time per chunk in each stage",
            ["stage"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "imagebatch_worker_batch_size",
            "Images per forward pass (decoded images of a chunk)",
            buckets=_SIZES,
            registry=registry,
        )
        self.images = Counter(
            "imagebatch_worker_images", "Images finished by this worker", ["outcome"], registry=registry
        )
        self.chunks = Counter("imagebatch_worker_chunks", "Chunk tasks by outcome", ["outcome"], registry=registry)

    def observe_chunk(self, report: ChunkReport | None) -> None:
        """Record a chunk that ran (report) or had nothing to do (None)."""
        if report is None:
            self.chunks.labels("skipped").inc()
            return
        self.chunks.labels("processed").inc()
        self.stage_seconds.labels("decode").observe(report.read_seconds)
        self.stage_seconds.labels("forward").observe(report.forward_seconds)
        self.stage_seconds.labels("write").observe(report.write_seconds)
        if report.succeeded:
            self.batch_size.observe(report.succeeded)
        self.images.labels("succeeded").inc(report.succeeded)
        self.images.labels("failed").inc(report.failed)

    def observe_gave_up(self, images: int) -> None:
        """A chunk whose retries ran out: its open images became internal errors."""
        self.chunks.labels("gave_up").inc()
        self.images.labels("failed").inc(images)


def start_metrics_server(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics from a background thread (one port per worker process; 0 = off)."""
    if port <= 0:
        return
    start_http_server(port, addr=addr, registry=registry)
    logger.info("worker metrics on http://%s:%d/metrics", addr, port)
