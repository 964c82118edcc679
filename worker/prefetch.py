"""Chunks in flight inside one worker: the next chunk decodes while the current one runs forward.

The worker runs WORKER_CONCURRENCY chunk tasks in Celery's threads pool (each message acked
late, after its own commit). Forward passes take turns through one gate: two concurrent
forwards would only fight over the same cores, while a decode or a database write overlapping
a forward uses time the model leaves idle. The pool size bounds how many decoded chunks exist
at once, so memory stays flat however long the queue is.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class GateStats:
    """What the gate saw since it was made: for tests and the benchmark's time split."""

    turns: int = 0
    waiting: int = 0  # decoded chunks waiting for their turn right now
    max_waiting: int = 0
    max_inside: int = 0
    wait_seconds: float = 0.0
    busy_seconds: float = 0.0


class ForwardGate:
    """A lock around forward passes that counts who waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meta = threading.Lock()
        self._inside = 0
        self.stats = GateStats()

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Hold the model for one forward; yields the seconds spent waiting for it."""
        asked = time.perf_counter()
        with self._meta:
            self.stats.waiting += 1
            self.stats.max_waiting = max(self.stats.max_waiting, self.stats.waiting)
        with self._lock:
            got = time.perf_counter()
            with self._meta:
                self.stats.waiting -= 1
                self._inside += 1
                self.stats.max_inside = max(self.stats.max_inside, self._inside)
                self.stats.turns += 1
                self.stats.wait_seconds += got - asked
            try:
                yield got - asked
            finally:
                with self._meta:
                    self._inside -= 1
                    self.stats.busy_seconds += time.perf_counter() - got


_gate = ForwardGate()


def forward_gate() -> ForwardGate:
    """The process-wide gate (one model set per process, so one gate)."""
    return _gate
