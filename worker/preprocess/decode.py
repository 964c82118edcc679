"""Decode image bytes like torchvision's reference: pixel limit, draft decode, EXIF orientation, RGB, statistics,
and the thumbnail (and preview) made from the decoded picture."""

import io
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import ExifTags, Image, ImageOps, ImageStat, UnidentifiedImageError

from imagebatch.core import errors
from imagebatch.worker.preprocess.budget import PixelBudget
from imagebatch.worker.preprocess.renditions import RenditionMaker, Renditions
from imagebatch.worker.preprocess.transforms import HostTransform, Uint8Transform

JPEG_MAGIC = b"\xff\xd8\xff"
_LIBTIFF_MISSING = ("webp", "lerc", "jpeg2000")


@dataclass(frozen=True)
class DecodedImage:
    width: int  # after EXIF orientation
    height: int
    mode: str  # as stored in the file, before conversion to RGB
    format: str | None
    mean: tuple[float, float, float]  # per RGB channel, 0-255
    std: tuple[float, float, float]
    tensor: torch.Tensor  # the host transform's output: CHW float32 (CPU) or uint8 (CUDA)
    renditions: Renditions | None = None  # thumbnail and preview, when the decoder makes them


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
    image, full_size = open_header(data, draft)
    load_checked(image)
    return image, full_size


def open_header(data: bytes, draft: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The image with only its header read (its size checked, a draft scale set) and its full size.

    image.size is then what the full decode will produce: the pixels it is about to hold.
    """
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
    return image, full_size


def load_checked(image: Image.Image) -> None:
    """Decode the pixels, turning a decoder's failure into the image's error category."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if _undecodable(image, exc):
            message = f"{image.format} image this build cannot decode: {exc}"
            raise UnusableImage(errors.UNSUPPORTED_FORMAT, message) from exc
        raise UnusableImage(errors.TRUNCATED, f"image data is truncated or corrupt: {exc}") from exc


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


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def decode_jpeg_on_device(data: bytes, device: str) -> torch.Tensor:
    """A JPEG decoded by nvJPEG on the GPU and EXIF-oriented: full-size uint8 CHW on `device`."""
    from torchvision.io import ImageReadMode, decode_jpeg

    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)


def _per_channel(values: Sequence[float]) -> tuple[float, float, float]:
    red, green, blue = values  # an RGB image's statistics
    return float(red), float(green), float(blue)


class Decoder:
    """Bytes to a DecodedImage with one host transform; JPEGs on `gpu_device` when given (IMAGEBATCH_GPU_DECODE);
    with `renditions`, the image's thumbnail and preview too."""

    def __init__(
        self,
        transform: HostTransform,
        gpu_device: str | None = None,
        renditions: RenditionMaker | None = None,
        budget: PixelBudget | None = None,
    ) -> None:
        self.transform = transform
        self.gpu_device = gpu_device
        self.renditions = renditions
        self.budget = budget  # the worker's DECODE_PIXEL_BUDGET, shared by its decoders; None: unbounded
        self._on_device: tuple[str, Uint8Transform] | None = None
        if gpu_device is not None:
            if not isinstance(transform, Uint8Transform):
                raise ValueError("GPU JPEG decode needs the uint8 host transform (the device normalizes)")
            self._on_device = (gpu_device, transform)

    def __call__(self, data: bytes) -> DecodedImage:
        """Decode like torchvision's reference: exif_transpose, .convert("RGB"), weights.transforms().

        In fast mode JPEGs at least twice the resize size decode at reduced scale (draft mode);
        sizes stay the file's, statistics and tensor come from the reduced decode.
        """
        if self._on_device is not None and is_jpeg(data):
            return self._decode_on_device(data, *self._on_device)
        image, full_size = open_header(data, self.transform.draft_size)
        if self.budget is None:
            return self._decode(image, full_size)
        # Held until the decoded picture, its RGB copy and its renditions are gone (on return).
        with self.budget.hold(image.width * image.height):
            return self._decode(image, full_size)

    def _decode(self, image: Image.Image, full_size: tuple[int, int]) -> DecodedImage:
        load_checked(image)
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
            mean=_per_channel(stat.mean),
            std=_per_channel(stat.stddev),
            tensor=self.transform(rgb),
            renditions=self.renditions(rgb, fmt) if self.renditions else None,
        )

    def _decode_on_device(self, data: bytes, device: str, transform: Uint8Transform) -> DecodedImage:
        """nvJPEG decode; Pillow still reads the header: mode, size, orientation."""
        with Image.open(io.BytesIO(data)) as header:
            check_pixels(header)
            mode, (width, height) = header.mode, _oriented(header.size, header)
        full = decode_jpeg_on_device(data, device)
        pixels = full.flatten(1).float()
        return DecodedImage(
            width=width,
            height=height,
            mode=mode,
            format="JPEG",
            mean=_per_channel(pixels.mean(1).tolist()),
            std=_per_channel(pixels.std(1, correction=0).tolist()),
            tensor=transform.resize_crop_tensor(full),
            renditions=self.renditions.from_tensor(full) if self.renditions else None,
        )
