"""Fetch and decode images into model-ready tensors; every failure becomes a categorized result."""

import io
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from PIL import ExifTags, Image, ImageOps, ImageStat, UnidentifiedImageError

from imagebatch.core import errors
from imagebatch.core.config import settings
from imagebatch.core.netguard import BlockedAddress, within_roots
from imagebatch.core.storage import get_store
from imagebatch.worker import gpu
from imagebatch.worker.fetch import FetchError, fetch_url

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


def _read_local(path: str) -> bytes:
    roots = settings.allowed_roots
    if roots:
        # Checked again here: a symlink swapped in after submission must not lead outside the roots.
        try:
            path = within_roots(path, roots)
        except BlockedAddress as exc:
            raise _Failed(errors.NOT_FOUND, str(exc)) from exc
    return Path(path).read_bytes()


def fetch_bytes(location: str) -> bytes:
    """The raw bytes behind an image row's location (blob:, file: or http(s) URL)."""
    scheme, _, rest = location.partition(":")
    try:
        if scheme == "blob":
            return get_store().read_bytes(rest)
        if scheme == "file":
            return _read_local(rest)
    except FileNotFoundError as exc:
        raise _Failed(errors.NOT_FOUND, f"{location} does not exist") from exc
    except OSError as exc:
        raise _Failed(errors.NOT_FOUND, f"{location} cannot be read: {exc.strerror or exc}") from exc
    if scheme in ("http", "https"):
        try:
            return fetch_url(location)
        except FetchError as exc:
            raise _Failed(exc.category, str(exc)) from exc
    raise _Failed(errors.NOT_FOUND, f"unsupported location {location!r}")


def draft_target(transform: Transform) -> int | None:
    """The smallest side a draft decode may keep: the transform's resize size, so resize still shrinks."""
    size = getattr(transform, "resize_size", None)
    return int(size[0]) if size else None


_LIBTIFF_MISSING = ("webp", "lerc", "jpeg2000")


def _check_pixels(image: Image.Image) -> None:
    """Reject a header over MAX_IMAGE_PIXELS before any pixel is decoded.

    Pillow only warns between MAX_IMAGE_PIXELS and twice that; the warning is not thread-safe
    to catch, so check the header's size directly.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise _Failed(errors.TOO_LARGE, f"{image.width}x{image.height} pixels is over the limit of {limit}")


def _open_checked(data: bytes, draft: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The loaded image and its full size from the header (a draft decode may load it smaller)."""
    if not data:
        raise _Failed(errors.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise _Failed(errors.UNREADABLE, "not an image format Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise _Failed(errors.TOO_LARGE, str(exc)) from exc
    _check_pixels(image)
    full_size = image.size
    if draft and image.format == "JPEG" and min(full_size) >= 2 * draft:
        # libjpeg scales by 1/2..1/8 inside the IDCT: a phone photo decodes ~10x faster.
        image.draft(None, (draft, draft))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if _undecodable(image, exc):
            raise _Failed(errors.UNSUPPORTED_FORMAT, f"{image.format} image this build cannot decode: {exc}") from exc
        raise _Failed(errors.TRUNCATED, f"image data is truncated or corrupt: {exc}") from exc
    return image, full_size


def _undecodable(image: Image.Image, exc: Exception) -> bool:
    """Pillow knows the format but has no decoder for this variant (vs. corrupt data)."""
    text = str(exc).lower()
    if "not available" in text or "not supported" in text or "unsupported" in text:
        return True
    # libtiff names WEBP/LERC compression but is not built with them; the error says only "-2".
    return image.format == "TIFF" and image.info.get("compression") in _LIBTIFF_MISSING


def _oriented(size: tuple[int, int], image: Image.Image) -> tuple[int, int]:
    """A header size as it reads after exif_transpose (orientations 5-8 swap the sides)."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _decode_jpeg_on_device(data: bytes, transform: Transform, device: str) -> DecodedImage:
    """nvJPEG decode (IMAGEBATCH_GPU_DECODE); Pillow still reads the header: mode, size, orientation."""
    with Image.open(io.BytesIO(data)) as header:
        _check_pixels(header)
        mode, (width, height) = header.mode, _oriented(header.size, header)
    full = gpu.decode_jpeg_on_device(data, device)
    pixels = full.flatten(1).float()
    return DecodedImage(
        width=width, height=height, mode=mode, format="JPEG",
        mean=tuple(pixels.mean(1).tolist()), std=tuple(pixels.std(1, correction=0).tolist()),
        tensor=gpu.resize_crop(full, transform),
    )


def decode(data: bytes, transform: Transform, fast: bool = False, device: str | None = None) -> DecodedImage:
    """Decode like torchvision's reference: exif_transpose, .convert("RGB"), weights.transforms().

    fast=True lets JPEGs at least twice the resize size decode at reduced scale (draft mode);
    sizes stay the file's, statistics and tensor come from the reduced decode.
    """
    if device is not None and gpu.is_jpeg(data):
        return _decode_jpeg_on_device(data, transform, device)
    image, full_size = _open_checked(data, draft_target(transform) if fast else None)
    mode, fmt = image.mode, image.format
    width, height = _oriented(full_size, image)
    ImageOps.exif_transpose(image, in_place=True)
    # For an animated GIF this is the first frame, the one Image.open positions on.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    stat = ImageStat.Stat(rgb)
    return DecodedImage(
        width=width,
        height=height,
        mode=mode,
        format=fmt,
        mean=tuple(float(v) for v in stat.mean),
        std=tuple(float(v) for v in stat.stddev),
        tensor=transform(rgb),
    )


def read_image(
    location: str, transform: Transform, fast: bool = False, device: str | None = None
) -> DecodedImage | ImageFailure:
    """Fetch and decode one image; never raises for a bad image. `device`: decode JPEGs there."""
    try:
        return decode(fetch_bytes(location), transform, fast, device)
    except _Failed as exc:
        return exc.failure
    except Exception as exc:  # a decoder bug on one odd file must not sink its chunk
        logger.warning("unexpected failure reading %s", location, exc_info=True)
        return ImageFailure(errors.UNREADABLE, f"could not decode: {type(exc).__name__}: {exc}")


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    threads = settings.DECODE_THREADS or os.cpu_count() or 1
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")


def read_many(
    locations: Sequence[str], transform: Transform, fast: bool = False, device: str | None = None
) -> list[DecodedImage | ImageFailure]:
    """Read a chunk's images concurrently (Pillow and torch release the GIL), in input order."""
    return list(_pool().map(lambda loc: read_image(loc, transform, fast, device), locations))
