"""The worker's Celery app: imagebatch's shared configuration plus the chunk task, by name."""

from celery import Task

from imagebatch.core.logging import log_context
from imagebatch.core.queueing import PROCESS_CHUNK_TASK, make_celery
from imagebatch.db import webhooks
from imagebatch.worker import runner
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.tasks import RETRY_POLICY, ChunkTask

app = make_celery()


@app.task(name=PROCESS_CHUNK_TASK, base=ChunkTask, bind=True, **RETRY_POLICY)
def process_chunk(self: Task, job_id: str, start: int, stop: int) -> None:
    """Classify images [start, stop) of a job; the work lives in worker.runner."""
    ctx = WorkerContext.of(app)  # attached by worker.main at start-up
    with log_context(job_id=job_id, chunk=f"{start}-{stop}"):
        # The task id names this delivery: a redelivery of the message takes back its own rows.
        ctx.metrics.observe_chunk(runner.process_chunk(ctx, job_id, start, stop, token=self.request.id))
    # The chunk that finished the job (there is exactly one claim) sends its webhook.
    webhooks.deliver_in_background(job_id)
