"""A per-worker pixel budget: decodes wait until the pixels they will hold fit beside those in progress."""

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from imagebatch.worker.preprocess.turbo import draft_floor, draft_scale


class PixelBudget:
    """At most `capacity` pixels decoded at once across a worker's decode threads.

    A small file can declare a huge picture (a 150 KB PNG of 80 megapixels): what it will take
    is known from its header, before the full decode, so it waits here while others finish
    rather than adding gigabytes beside them. An image larger than the whole budget still runs,
    alone. Waiting is first come, first served only loosely (Condition wake-ups), which is enough:
    every holder finishes in the time of one decode.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a pixel budget needs at least one pixel (got {capacity})")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most ever held at once: what a test or a metric can read
        self._cond = threading.Condition()

    def acquire(self, pixels: int) -> int:
        """Wait until `pixels` fit (the whole budget for a larger image); returns what was taken."""
        wanted = max(1, min(pixels, self.capacity))
        with self._cond:
            self._cond.wait_for(lambda: self.in_use + wanted <= self.capacity)
            self.in_use += wanted
            self.peak = max(self.peak, self.in_use)
        return wanted

    def release(self, taken: int) -> None:
        with self._cond:
            self.in_use -= taken
            self._cond.notify_all()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        taken = self.acquire(pixels)
        try:
            yield
        finally:
            self.release(taken)


def header_pixels(data: bytes, draft_size: int | None) -> int:
    """The pixels a decode of `data` will hold, from its header alone (a JPEG at the scale a fast-mode
    decode reduces it by; other formats decode whole first); 0 when the header cannot be read, for the
    decode then fails at once with the image's error category."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            (width, height), fmt = header.size, header.format
    except Exception:  # not an image, or a decompression bomb: the decode says which
        return 0
    scale = draft_scale((width, height), draft_floor(draft_size)) if fmt == "JPEG" else 1
    return (width // scale) * (height // scale)
