"""Retry policy and last-resort failure handling shared by the worker's Celery tasks."""

import logging

from celery import Task

from imagebatch.db import webhooks
from imagebatch.worker import writer
from imagebatch.worker.context import WorkerContext

logger = logging.getLogger(__name__)

# Unexpected errors (database or store briefly unavailable, out of memory) retry with
# exponential backoff: about 2, 4, 8, 16 s plus jitter before giving up on the chunk.
RETRY_POLICY = {
    "autoretry_for": (Exception,),
    "max_retries": 4,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
}

# A worker whose training slots are full sends a training message back for this long.
TRAIN_BUSY_RETRY_SECONDS = 10


def _chunk_args(args: tuple, kwargs: dict) -> tuple[str, int, int]:
    names = ("job_id", "start", "stop")
    values = dict(zip(names, args, strict=False)) | {k: v for k, v in kwargs.items() if k in names}
    return values["job_id"], int(values["start"]), int(values["stop"])


class ChunkTask(Task):
    """Once retries are exhausted, the chunk's open images become `internal` errors so the job ends."""

    # Reports an acknowledgement lost with the broker connection (worker.broker_watch).
    Request = "imagebatch.worker.broker_watch:WatchedRequest"

    def on_failure(self, exc: Exception, task_id: str, args: tuple, kwargs: dict, einfo: object) -> None:
        try:
            job_id, start, stop = _chunk_args(args, kwargs)
        except (KeyError, TypeError, ValueError):
            logger.error("task %s failed with malformed arguments %r %r: %r", task_id, args, kwargs, exc)
            return
        reason = f"{type(exc).__name__}: {exc}"
        message = f"chunk [{start}, {stop}) failed after {self.max_retries} retries: {reason}"
        logger.error("job %s: %s", job_id, message)
        try:
            count = writer.fail_open_images(job_id, start, stop, message)
        except Exception:
            # The database may still be down; the rows stay open and the job shows them pending.
            logger.exception("job %s: could not record the failure of chunk [%d, %d)", job_id, start, stop)
            return
        logger.error("job %s: %d images of chunk [%d, %d) marked internal errors", job_id, count, start, stop)
        ctx = WorkerContext.find(self.app)
        if ctx is not None:  # None only where the task could not run for want of a context
            ctx.metrics.observe_gave_up(count)
        webhooks.deliver_in_background(job_id)
