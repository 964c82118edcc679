"""The stuck-work sweeper: a daemon thread in every worker process running db.lifecycle.sweep()."""

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from functools import partial

from celery import Celery

from imagebatch.core.chunks import send_chunks
from imagebatch.core.config import settings
from imagebatch.core.queueing import TRAIN_QUEUE, queue_for_model
from imagebatch.core.storage import get_store
from imagebatch.db import webhooks
from imagebatch.db.lifecycle import SweepReport, sweep
from imagebatch.db.session import session_scope
from imagebatch.worker.training.job_sweeper import sweep_training_once
from imagebatch.worker.upload_sweeper import sweep_uploads

logger = logging.getLogger(__name__)


def queued_messages(app: Celery, queues: list[str]) -> int:
    """Messages waiting in `queues` on the broker."""
    waiting = 0
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in queues:
            # Redis drops an empty list, so kombu reports an empty queue as missing.
            with contextlib.suppress(*connection.channel_errors):
                waiting += channel.queue_declare(queue=queue, passive=True).message_count
        # kombu's SQL transport (embedded broker) gives each channel a session it never closes:
        # its database connection would stay checked out, and a few sweeps exhaust the pool the
        # worker's consumer fetches through.
        session = getattr(channel, "_session", None)
        if session is not None:
            session.close()
    return waiting


def queue_checker(app: Celery) -> Callable[[str], bool]:
    """Whether a model's queue holds no waiting message.

    On the embedded broker too: kombu's SQL transport counts the messages still visible, and a
    message fetched by a worker that was then killed stays invisible for ever, so only this
    check brings its chunk back.
    """

    def queue_empty(model: str) -> bool:
        return queued_messages(app, [queue_for_model(model)]) == 0

    return queue_empty


def sweep_once(app: Celery, liveness: bool = True) -> SweepReport:
    """One sweep in one transaction (conditional updates make concurrent sweepers safe);
    `liveness`: requeue the chunks of workers whose heartbeat stopped."""
    with session_scope() as session:
        report = sweep(
            session=session,
            send=partial(send_chunks, app),
            deadline=settings.CHUNK_DEADLINE,
            max_attempts=settings.CHUNK_MAX_ATTEMPTS,
            grace=settings.SUBMIT_GRACE,
            orphan_after=settings.ORPHAN_AFTER,
            queue_empty=queue_checker(app),
            dead_after=settings.WORKER_DEAD_AFTER if liveness else None,
        )
    if report.requeued or report.timed_out or report.enqueued_jobs:
        logger.warning(
            "sweep: %d chunk(s) requeued, %d image(s) timed out, %d job(s) enqueued",
            len(report.requeued),
            report.timed_out,
            len(report.enqueued_jobs),
        )
    return report


def _loop(app: Celery, stop: threading.Event) -> None:
    interval = settings.SWEEP_INTERVAL
    # The store's listing is not free (an object store lists over HTTP): uploads are checked
    # a few times per grace period rather than on every sweep.
    uploads_every, uploads_checked = settings.UPLOAD_ORPHAN_GRACE / 4, 0.0
    # While the database was away nobody could beat: every heartbeat is stale when it returns.
    # Judge liveness again only once the live workers have had WORKER_DEAD_AFTER to beat.
    failed_at = -float("inf")
    # Jitter so the sweeps of workers started together do not line up.
    while not stop.wait(interval * random.uniform(0.8, 1.2)):
        try:
            sweep_once(app, liveness=time.monotonic() - failed_at > settings.WORKER_DEAD_AFTER)
            sweep_training_once(app, lambda: queued_messages(app, [TRAIN_QUEUE]) == 0)
            webhooks.deliver_due()  # jobs the sweep (or any other path) finished get their webhook
            if time.monotonic() - uploads_checked >= uploads_every:
                uploads_checked = time.monotonic()
                sweep_uploads(get_store(), settings.UPLOAD_ORPHAN_GRACE)
        except Exception as exc:  # the database or broker may be away; the next sweep retries
            failed_at = time.monotonic()
            logger.warning("sweep failed: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)


def start_sweeper(app: Celery) -> threading.Event | None:
    """Start the sweeper thread unless SWEEP_INTERVAL is 0; set the returned event to stop it."""
    if settings.SWEEP_INTERVAL <= 0:
        return None
    stop = threading.Event()
    threading.Thread(target=_loop, args=(app, stop), name="sweeper", daemon=True).start()
    logger.info(
        "sweeper: every ~%.0fs, chunk deadline %.0fs, %d attempts, submit grace %.0fs, "
        "lost chunks resent after %.0fs idle, chunks of workers silent for %.0fs requeued",
        settings.SWEEP_INTERVAL,
        settings.CHUNK_DEADLINE,
        settings.CHUNK_MAX_ATTEMPTS,
        settings.SUBMIT_GRACE,
        settings.ORPHAN_AFTER,
        settings.WORKER_DEAD_AFTER,
    )
    return stop
