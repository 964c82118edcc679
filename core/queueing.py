"""Celery wiring shared by the API (sends by task name) and the worker (runs the tasks)."""

from celery import Celery

from imagebatch.core.config import Settings, settings

PROCESS_CHUNK_TASK = "imagebatch.process_chunk"
# Training jobs have a queue of their own, so classification and training can run in separate workers.
TRAIN_TASK = "imagebatch.train_model"
TRAIN_QUEUE = "imagebatch.train"
# Exports and Grad-CAM maps are built on the model's queue, by a worker that serves that architecture.
BUILD_ARTEFACT_TASK = "imagebatch.build_artefact"
# What `imagebatch worker --queues` chooses from: the model queues (classify), the training queue (train).
QUEUE_KINDS = ("classify", "train")
# Redis priority lists 0 (consumed first) .. 9; core.chunks decides which chunk gets which.
PRIORITY_LEVELS = 10


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
        # A chunk running when the broker connection drops finishes and commits; its message
        # comes back later and finds nothing to do (Celery 6 will default to cancelling it).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # kombu's SQLAlchemy transport passes every transport option on to create_engine(),
        # which rejects these keys, so the embedded broker keeps kombu's defaults (1 s polling).
        broker_transport_options={}
        if config.is_embedded
        else {
            "visibility_timeout": config.VISIBILITY_TIMEOUT,
            # One Redis list per priority 0 (first) .. 9 (last): see core.chunks.chunk_priority().
            "priority_steps": list(range(PRIORITY_LEVELS)),
            # Scan for messages of dead workers every 10 s (kombu's default scans every 100 s),
            # so a chunk comes back about VISIBILITY_TIMEOUT + 10 s after its worker died.
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
        # Remote control (celery inspect/control, Flower's worker pages) keeps a pub/sub
        # subscription on Redis, whose reconnect after a Redis restart can crash the worker in
        # kombu ("'NoneType' object has no attribute 'hostname'", seen in the fault tests).
        worker_enable_remote_control=config.WORKER_REMOTE_CONTROL,
        task_default_queue=queue_for_model(config.DEFAULT_MODEL),
    )
    return app
