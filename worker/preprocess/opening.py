"""Opening image bytes safely: the pixel limit, the error categories, Pillow's checked (draft) decode."""

import io
from dataclasses import dataclass

from PIL import ExifTags, Image, UnidentifiedImageError

from imagebatch.core import errors

JPEG_MAGIC = b"\xff\xd8\xff"
_LIBTIFF_MISSING = ("webp", "lerc", "jpeg2000")


@dataclass(frozen=True)
class ImageFailure:
    category: str  # one of imagebatch.core.errors
    message: str


class UnusableImage(Exception):
    """An image that cannot be classified, for a reason its result row records."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.failure = ImageFailure(category, message)


def check_pixels(image: Image.Image) -> None:
    """Reject a header over MAX_IMAGE_PIXELS before any pixel is decoded.

    Pillow only warns between MAX_IMAGE_PIXELS and twice that; the warning is not thread-safe
    to catch, so check the header's size directly.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise UnusableImage(errors.TOO_LARGE, f"{image.width}x{image.height} pixels is over the limit of {limit}")


def open_checked(data: bytes, draft: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The loaded image and its full size from the header (a draft decode may load it smaller)."""
    if not data:
        raise UnusableImage(errors.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise UnusableImage(errors.UNREADABLE, "not an image format Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise UnusableImage(errors.TOO_LARGE, str(exc)) from exc
    check_pixels(image)
    full_size = image.size
    if draft and image.format == "JPEG" and min(full_size) >= 2 * draft:
        # libjpeg scales by 1/2..1/8 inside the IDCT: a phone photo decodes ~10x faster.
        image.draft(None, (draft, draft))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if _undecodable(image, exc):
            message = f"{image.format} image this build cannot decode: {exc}"
            raise UnusableImage(errors.UNSUPPORTED_FORMAT, message) from exc
        raise UnusableImage(errors.TRUNCATED, f"image data is truncated or corrupt: {exc}") from exc
    return image, full_size


def _undecodable(image: Image.Image, exc: Exception) -> bool:
    """Pillow knows the format but has no decoder for this variant (vs. corrupt data)."""
    text = str(exc).lower()
    if "not available" in text or "not supported" in text or "unsupported" in text:
        return True
    # libtiff names WEBP/LERC compression but is not built with them; the error says only "-2".
    return image.format == "TIFF" and image.info.get("compression") in _LIBTIFF_MISSING


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def oriented_size(size: tuple[int, int], image: Image.Image) -> tuple[int, int]:
    """A header size as it reads after exif_transpose (orientations 5-8 swap the sides)."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size
