"""Fetch an image row's bytes (blob:, file:, http(s)) and decode a chunk's images on the decode pool."""

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path

from imagebatch.core import errors
from imagebatch.core.config import Settings
from imagebatch.core.netguard import BlockedAddress, within_roots
from imagebatch.core.storage import get_store
from imagebatch.worker.fetch import Fetcher, FetchError
from imagebatch.worker.preprocess import DecodedImage, ImageFailure, UnusableImage

logger = logging.getLogger(__name__)

Decode = Callable[[bytes], DecodedImage]  # a preprocess.Decoder


class Reader:
    """Reads image rows for one worker: `settings` for the allowed roots, `fetcher` for URLs, `pool` to decode."""

    def __init__(self, settings: Settings, fetcher: Fetcher, pool: Executor) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.pool = pool

    def fetch_bytes(self, location: str) -> bytes:
        """The raw bytes behind an image row's location (blob:, file: or http(s) URL)."""
        scheme, _, rest = location.partition(":")
        try:
            if scheme == "blob":
                return get_store().read_bytes(rest)
            if scheme == "file":
                return self._read_local(rest)
        except FileNotFoundError as exc:
            raise UnusableImage(errors.NOT_FOUND, f"{location} does not exist") from exc
        except OSError as exc:
            raise UnusableImage(errors.NOT_FOUND, f"{location} cannot be read: {exc.strerror or exc}") from exc
        if scheme in ("http", "https"):
            try:
                return self.fetcher.fetch(location)
            except FetchError as exc:
                raise UnusableImage(exc.category, str(exc)) from exc
        raise UnusableImage(errors.NOT_FOUND, f"unsupported location {location!r}")

    def _read_local(self, path: str) -> bytes:
        roots = self.settings.allowed_roots
        if roots:
            # Checked again here: a symlink swapped in after submission must not lead outside the roots.
            try:
                path = within_roots(path, roots)
            except BlockedAddress as exc:
                raise UnusableImage(errors.NOT_FOUND, str(exc)) from exc
        return Path(path).read_bytes()

    def read_image(self, location: str, decode: Decode) -> DecodedImage | ImageFailure:
        """Fetch and decode one image; never raises for a bad image."""
        try:
            return decode(self.fetch_bytes(location))
        except UnusableImage as exc:
            return exc.failure
        except Exception as exc:  # a decoder bug on one odd file must not sink its chunk
            logger.warning("unexpected failure reading %s", location, exc_info=True)
            return ImageFailure(errors.UNREADABLE, f"could not decode: {type(exc).__name__}: {exc}")

    def read_many(self, locations: Sequence[str], decode: Decode) -> list[DecodedImage | ImageFailure]:
        """Read a chunk's images concurrently (Pillow and torch release the GIL), in input order."""
        return list(self.pool.map(lambda location: self.read_image(location, decode), locations))
