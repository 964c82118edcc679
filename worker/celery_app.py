"""The worker's Celery app: imagebatch's shared configuration plus the chunk, training and artefact tasks, by name."""

from celery import Task

from imagebatch.core.logging import log_context
from imagebatch.core.queueing import BUILD_ARTEFACT_TASK, PROCESS_CHUNK_TASK, TRAIN_TASK, make_celery
from imagebatch.db import webhooks
from imagebatch.worker import artefacts, runner
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.tasks import RETRY_POLICY, TRAIN_BUSY_RETRY_SECONDS, ChunkTask
from imagebatch.worker.training import job_runner

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


@app.task(name=TRAIN_TASK, bind=True, max_retries=None)
def train_model(self: Task, job_id: str) -> str:
    """Run a training job; the work lives in worker.training.job_runner (the job's lease makes a duplicate harmless).

    A process already running TRAIN_SLOTS trainings sends this one back to the queue for a while,
    rather than tying up a thread its chunks need.
    """
    ctx = WorkerContext.of(app)
    if not ctx.training_slots.acquire(blocking=False):
        raise self.retry(countdown=TRAIN_BUSY_RETRY_SECONDS)
    try:
        with log_context(job_id=job_id):
            return job_runner.run_training_job(ctx, job_id)
    finally:
        ctx.training_slots.release()


@app.task(name=BUILD_ARTEFACT_TASK, **RETRY_POLICY)
def build_artefact(artefact_id: int) -> str:
    """Build a model export or a Grad-CAM map; the work lives in worker.artefacts."""
    return artefacts.build_artefact(WorkerContext.of(app), artefact_id)
