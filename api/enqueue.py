"""Send a job's chunk tasks to the broker by name; one lazily made Celery app per process."""

import logging
from functools import lru_cache

from celery import Celery

from imagebatch.core.chunks import job_chunks, send_chunks
from imagebatch.core.queueing import make_celery, queue_for_model

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def celery_app() -> Celery:
    """Made on first use so importing the API never touches the broker."""
    return make_celery()


def enqueue_chunks(job_id: str, model: str, total: int, chunk_size: int) -> int:
    """One process_chunk message per chunk of the job (core.chunks' plan); returns how many were sent."""
    sent = send_chunks(celery_app(), job_chunks(job_id, model, total, chunk_size))
    logger.info("job %s: sent %d chunk task(s) to %s", job_id, sent, queue_for_model(model))
    return sent


def check_broker(timeout: float = 3.0) -> None:
    """Raise if the broker cannot be reached within about `timeout` seconds."""
    with celery_app().connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        # Opening a channel is what actually talks to Redis (it pings) or the broker database.
        _ = connection.default_channel
