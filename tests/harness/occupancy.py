"""How many threads were inside a stretch of code at once: for tests of locks, gates and slots."""

import threading
import time


class Occupancy:
    """`stay(seconds)` enters, waits `seconds` and leaves; `peak` is the most inside at once so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.peak = 0

    def stay(self, seconds: float) -> None:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        time.sleep(seconds)
        with self._lock:
            self.inside -= 1
