"""A bound on the submissions one API process reads at once: the next ones wait their turn, then 503."""

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import HTTPException

# Weight of the latest submission in the running mean of how long one takes.
_SMOOTHING = 0.2
LONGEST_HINT = 60
# Retry-After of a 503 for a passing outage (database, broker) or a full connection pool.
RETRY_AFTER_BUSY = 5


class SubmissionGate:
    """At most `slots` submissions in flight; a turn not free within `wait` seconds is a 503 whose
    Retry-After is the time the queue ahead needs at the recent pace (0 slots: no gate)."""

    def __init__(self, slots: int, wait: float) -> None:
        self.slots, self.wait = slots, wait
        self._semaphore = asyncio.Semaphore(slots) if slots else None
        self.waiting = 0
        self.mean_seconds = 1.0

    def retry_after(self) -> int:
        ahead = self.waiting + self.slots
        return min(LONGEST_HINT, max(1, math.ceil(ahead * self.mean_seconds / max(self.slots, 1))))

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if self._semaphore is None:
            yield
            return
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait):
                await self._semaphore.acquire()
        except TimeoutError:
            raise HTTPException(
                503,
                f"too many submissions in flight ({self.slots}, IMAGEBATCH_MAX_SUBMISSIONS_IN_FLIGHT); retry later",
                headers={"Retry-After": str(self.retry_after())},
            ) from None
        finally:
            self.waiting -= 1
        began = time.monotonic()
        try:
            yield
        finally:
            self._semaphore.release()
            took = time.monotonic() - began
            self.mean_seconds += _SMOOTHING * (took - self.mean_seconds)
