"""Prometheus collector for queue depth: messages waiting on each model's broker queue at scrape time."""

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from imagebatch.api.enqueue import celery_app
from imagebatch.core.catalog import MODELS
from imagebatch.core.queueing import queue_for_model

logger = logging.getLogger(__name__)


def queue_depths(timeout: float = 2.0) -> dict[str, int]:
    """Waiting messages per model queue (Redis LLEN or the SQLite broker's count), one connection."""
    depths = {}
    with celery_app().connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        channel = connection.default_channel
        for model in MODELS:
            queue = queue_for_model(model)
            try:
                depths[model] = channel.queue_declare(queue=queue, passive=True).message_count
            except connection.channel_errors:
                depths[model] = 0  # Redis drops an empty list, so kombu reports the queue missing
    return depths


class QueueCollector(Collector):
    """imagebatch_queue_depth{model} and imagebatch_broker_up, read fresh on every scrape."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("imagebatch_broker_up", "1 if the last scrape could read the broker queues")
        try:
            depths = queue_depths()
        except Exception as exc:
            logger.warning("metrics: broker query failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauge = GaugeMetricFamily("imagebatch_queue_depth", "Chunk tasks waiting per model queue", labels=["model"])
        for model, depth in depths.items():
            gauge.add_metric([model], depth)
        yield gauge
