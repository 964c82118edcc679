"""Celery wiring shared by the API (sends by task name) and the worker (runs the tasks)."""

from celery import Celery

from imagebatch.config import Settings, settings

PROCESS_CHUNK_TASK = "imagebatch.process_chunk"


def queue_for_model(model: str) -> str:
    """One queue per model, so a worker consumes only the chunks of models it serves."""
    return f"imagebatch.{model}"


def make_celery(config: Settings = settings) -> Celery:
    """A Celery app configured for imagebatch; importing it pulls in no worker code or torch."""
    app = Celery("imagebatch", broker=config.broker_url)
    app.conf.update(
        # The database is the source of truth for state and counts: no result backend.
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        # A chunk is acknowledged only after its rows are committed; a worker that dies
        # mid-chunk leaves the message to be redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # kombu's SQLAlchemy transport passes every transport option on to create_engine(),
        # which rejects these keys, so the embedded broker keeps kombu's defaults (1 s polling).
        broker_transport_options={} if config.is_embedded else {
            "visibility_timeout": config.VISIBILITY_TIMEOUT,
        },
        worker_hijack_root_logger=False,
        task_default_queue=queue_for_model(config.DEFAULT_MODEL),
    )
    return app
