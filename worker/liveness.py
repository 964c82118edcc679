"""Worker liveness: a heartbeat thread recording this process alive, and handing its chunks back on shutdown."""

import logging
import os
import socket
import threading
import uuid

from celery import Celery

from imagebatch.core.chunks import send_chunks
from imagebatch.db import lifecycle
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)


def new_worker_id() -> str:
    """This process's name in claims and heartbeats: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class WorkerStopping(Exception):
    """The worker is shutting down: a chunk not yet written stops here and is handed back."""


class Heartbeat:
    """Records `worker_id` alive every `interval` seconds in the database, from a daemon thread.

    The database rather than a Redis key with a TTL: it works with every broker (the embedded
    SQLite default has no Redis), and the sweeper compares claims with heartbeats in one query.
    """

    def __init__(self, worker_id: str, interval: float) -> None:
        self.worker_id = worker_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """One heartbeat; False (logged) when the database is away: the next one retries."""
        try:
            with session_scope() as session:
                lifecycle.beat(
                    session=session, worker_id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid()
                )
        except Exception as exc:
            logger.warning("heartbeat failed: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            return False
        return True

    def start(self) -> None:
        """Beat once now (so the first claim names a worker already known alive), then keep beating."""
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)


def hand_back(app: Celery, worker_id: str) -> int:
    """Release every row this worker still holds, send their chunks again and drop its heartbeat
    row; the number of chunks resent. Sent before the commit, as the sweeper does: a commit that
    fails leaves rows of a worker with no heartbeat, which the next sweep requeues anyway."""
    with session_scope() as session:
        chunks = lifecycle.retire_worker(session=session, worker_id=worker_id)
        send_chunks(app, chunks)
    if chunks:
        logger.warning("shutting down: handed back %d unfinished chunk(s)", len(chunks))
    return len(chunks)
