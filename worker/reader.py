"""Fetch and decode images into model-ready tensors; every failure becomes a categorized result."""

import io
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import httpx
import torch
from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

from imagebatch import errors
from imagebatch.config import settings
from imagebatch.storage import get_store

logger = logging.getLogger(__name__)

Transform = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class DecodedImage:
    width: int  # after EXIF orientation
    height: int
    mode: str  # as stored in the file, before conversion to RGB
    format: str | None
    mean: tuple[float, float, float]  # per RGB channel, 0-255
    std: tuple[float, float, float]
    tensor: torch.Tensor  # weights.transforms() output, CHW float32


@dataclass(frozen=True)
class ImageFailure:
    category: str  # one of imagebatch.errors
    message: str


class _Failed(Exception):
    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.failure = ImageFailure(category, message)


@lru_cache(maxsize=1)
def _http_client() -> httpx.Client:
    # One pooled client per process; httpx.Client is safe to share between threads.
    return httpx.Client(timeout=settings.FETCH_TIMEOUT, follow_redirects=True)


def _fetch_http(url: str) -> bytes:
    limit = settings.FETCH_MAX_BYTES
    too_big = f"download is larger than {limit} bytes (IMAGEBATCH_FETCH_MAX_BYTES)"
    try:
        with _http_client().stream("GET", url) as response:
            if response.status_code >= 400:
                raise _Failed(errors.FETCH_FAILED, f"HTTP {response.status_code} from {url}")
            if int(response.headers.get("content-length") or 0) > limit:
                raise _Failed(errors.TOO_LARGE, too_big)
            body = bytearray()
            for block in response.iter_bytes():
                body += block
                if len(body) > limit:
                    raise _Failed(errors.TOO_LARGE, too_big)
            return bytes(body)
    except httpx.HTTPError as exc:
        raise _Failed(errors.FETCH_FAILED, f"{type(exc).__name__} fetching {url}: {exc}") from exc


def fetch_bytes(location: str) -> bytes:
    """The raw bytes behind an image row's location (blob:, file: or http(s) URL)."""
    scheme, _, rest = location.partition(":")
    try:
        if scheme == "blob":
            return get_store().read_bytes(rest)
        if scheme == "file":
            return Path(rest).read_bytes()
    except FileNotFoundError as exc:
        raise _Failed(errors.NOT_FOUND, f"{location} does not exist") from exc
    except OSError as exc:
        raise _Failed(errors.NOT_FOUND, f"{location} cannot be read: {exc.strerror or exc}") from exc
    if scheme in ("http", "https"):
        return _fetch_http(location)
    raise _Failed(errors.NOT_FOUND, f"unsupported location {location!r}")


def _open_checked(data: bytes) -> Image.Image:
    if not data:
        raise _Failed(errors.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise _Failed(errors.UNREADABLE, "not an image format Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise _Failed(errors.TOO_LARGE, str(exc)) from exc
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; the warning is not thread-safe
    # to catch, so check the header's size directly.
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise _Failed(errors.TOO_LARGE, f"{image.width}x{image.height} pixels is over the limit of {limit}")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _Failed(errors.TRUNCATED, f"image data is truncated or corrupt: {exc}") from exc
    return image


def decode(data: bytes, transform: Transform) -> DecodedImage:
    """Decode like torchvision's reference: exif_transpose, .convert("RGB"), weights.transforms()."""
    image = _open_checked(data)
    mode, fmt = image.mode, image.format
    ImageOps.exif_transpose(image, in_place=True)
    # For an animated GIF this is the first frame, the one Image.open positions on.
    rgb = image.convert("RGB")
    stat = ImageStat.Stat(rgb)
    return DecodedImage(
        width=rgb.width,
        height=rgb.height,
        mode=mode,
        format=fmt,
        mean=tuple(float(v) for v in stat.mean),
        std=tuple(float(v) for v in stat.stddev),
        tensor=transform(rgb),
    )


def read_image(location: str, transform: Transform) -> DecodedImage | ImageFailure:
    """Fetch and decode one image; never raises for a bad image."""
    try:
        return decode(fetch_bytes(location), transform)
    except _Failed as exc:
        return exc.failure
    except Exception as exc:  # a decoder bug on one odd file must not sink its chunk
        logger.warning("unexpected failure reading %s", location, exc_info=True)
        return ImageFailure(errors.UNREADABLE, f"could not decode: {type(exc).__name__}: {exc}")


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    threads = settings.DECODE_THREADS or os.cpu_count() or 1
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")


def read_many(locations: Sequence[str], transform: Transform) -> list[DecodedImage | ImageFailure]:
    """Read a chunk's images concurrently (Pillow and torch release the GIL), in input order."""
    return list(_pool().map(lambda loc: read_image(loc, transform), locations))
