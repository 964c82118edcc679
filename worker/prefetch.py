"""Chunks in flight inside one worker: the next chunk decodes while the current one runs forward.

The worker runs WORKER_CONCURRENCY chunk tasks in Celery's threads pool (each message acked
late, after its own commit). Forward passes go through a gate with FORWARD_SLOTS places:

- one slot (a GPU, or a CPU forward that uses every core): forwards take turns, since two at
  once would only fight over the same device, while a decode or a database write overlapping
  a forward uses time the model leaves idle;
- several slots (CPU): each chunk's forward runs on its share of the cores (torch threads =
  cores / slots) at the same time as the others', with no intra-op barrier for a decode
  thread to stall.

The pool size bounds how many decoded chunks exist at once, so memory stays flat however long
the queue is.
"""

import logging
import os
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
    """A semaphore around forward passes that counts who waits for it."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"a forward gate needs at least one slot, not {slots}")
        self.slots = slots
        self._slots = threading.BoundedSemaphore(slots)
        self._meta = threading.Lock()
        self._inside = 0
        self.stats = GateStats()

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Hold a slot for one forward; yields the seconds spent waiting for it."""
        asked = time.perf_counter()
        with self._meta:
            self.stats.waiting += 1
            self.stats.max_waiting = max(self.stats.max_waiting, self.stats.waiting)
        with self._slots:
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


@dataclass(frozen=True)
class CpuSplit:
    """How a worker shares its cores: forwards at once, and torch threads each."""

    forward_slots: int
    torch_threads: int


def cpu_split(
    device_type: str, concurrency: int, forward_slots: int, torch_threads: int, cores: int | None = None
) -> CpuSplit:
    """Fill in the zeros (= automatic) of the settings for `device_type`.

    Automatic slots: one on a GPU (it runs one batch at a time anyway); on a CPU one per chunk in
    flight, at most one per core (a chunk beyond that decodes ahead). Automatic torch threads: the
    cores divided among the slots.
    """
    cores = max(1, cores or os.cpu_count() or 1)
    slots = forward_slots or (1 if device_type == "cuda" else min(concurrency, cores))
    slots = min(slots, concurrency)  # more slots than chunks in flight could never fill
    threads = torch_threads or max(1, cores // slots)
    return CpuSplit(forward_slots=slots, torch_threads=threads)
