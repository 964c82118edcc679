"""A running training job's lease, renewed by a heartbeat thread that also notices a cancel or a lost claim."""

import logging
import threading

from imagebatch.db import lifecycle
from imagebatch.db.models import JobState
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)


class Lease:
    """Renews the claim every `interval` seconds while training runs.

    should_stop() is what train() asks before every batch: it only reads two flags the thread sets
    (cancel requested; claim lost to another worker after this one looked dead), so it costs nothing.
    """

    def __init__(self, job_id: str, token: str, lease: float, interval: float) -> None:
        self.job_id, self.token, self.lease, self.interval = job_id, token, lease, interval
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 30)

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set()

    def renew(self) -> None:
        """One heartbeat; a database error is logged and the next beat tries again (the lease outlives a few)."""
        try:
            with session_scope() as session:
                state = lifecycle.renew_training_lease(
                    session=session, job_id=self.job_id, claimed_by=self.token, lease=self.lease
                )
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            logger.warning("training job %s: heartbeat failed: %s", self.job_id, reason)
            return
        if state is None:
            logger.warning("training job %s: claim lost (another worker resumed it); stopping", self.job_id)
            self.lost.set()
        elif state == JobState.CANCELLING.value and not self.cancelled.is_set():
            logger.info("training job %s: cancel requested; stopping at the next batch", self.job_id)
            self.cancelled.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.renew()
