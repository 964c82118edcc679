"""Send a job's chunk tasks to the broker by name; one lazily made Celery app per process."""

import logging
from functools import lru_cache

from celery import Celery

from imagebatch.db.jobs import chunk_bounds
from imagebatch.core.queueing import PROCESS_CHUNK_TASK, chunk_priority, make_celery, queue_for_model

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def celery_app() -> Celery:
    """Made on first use so importing the API never touches the broker."""
    return make_celery()


def enqueue_chunks(job_id: str, model: str, total: int, chunk_size: int) -> int:
    """One process_chunk message per chunk on the model's queue; returns how many were sent."""
    app = celery_app()
    queue = queue_for_model(model)
    bounds = chunk_bounds(total, chunk_size)
    # One producer (one broker connection) for all of a job's messages, and on Redis one pipeline:
    # kombu's publish batch sends them in round trips of up to 1,000 (other brokers: one by one).
    # A failure inside the batch discards what was not sent and raises, as a single send would.
    with app.producer_or_acquire() as producer, producer.batch():
        for index, (start, stop) in enumerate(bounds):
            app.send_task(PROCESS_CHUNK_TASK, args=[job_id, start, stop], queue=queue, producer=producer,
                          priority=chunk_priority(index))
    logger.info("job %s: sent %d chunk task(s) to %s", job_id, len(bounds), queue)
    return len(bounds)


def check_broker(timeout: float = 3.0) -> None:
    """Raise if the broker cannot be reached within about `timeout` seconds."""
    with celery_app().connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        # Opening a channel is what actually talks to Redis (it pings) or the broker database.
        _ = connection.default_channel
