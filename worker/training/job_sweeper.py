"""The sweeper's training pass: resend training jobs whose worker's lease lapsed or whose message was lost."""

import logging
from collections.abc import Callable
from functools import partial

from celery import Celery

from imagebatch.core.config import settings
from imagebatch.core.training import send_training
from imagebatch.db.lifecycle import TrainingSweep, sweep_training
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)


def sweep_training_once(app: Celery, training_queue_empty: Callable[[], bool]) -> TrainingSweep:
    """One pass in one transaction (conditional updates: one sweeper wins each job)."""

    def queue_empty() -> bool:
        # kombu's SQL transport counts are not worth trusting for this (as for chunks).
        return not settings.is_embedded and training_queue_empty()

    with session_scope() as session:
        report = sweep_training(
            session=session,
            send=partial(send_training, app),
            lease=settings.TRAIN_LEASE,
            grace=settings.SUBMIT_GRACE,
            idle=settings.ORPHAN_AFTER,
            queue_empty=queue_empty,
        )
    if report.resent or report.enqueued or report.cancelled:
        logger.warning(
            "training sweep: %d resent to resume, %d sent, %d cancelled",
            len(report.resent),
            len(report.enqueued),
            len(report.cancelled),
        )
    return report
