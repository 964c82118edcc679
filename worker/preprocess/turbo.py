"""Fast decode: JPEGs through libjpeg-turbo's own API (simplejpeg), reduced decodes within a published tolerance."""

import io
import logging
import math
from dataclasses import dataclass

import simplejpeg
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from imagebatch.worker.preprocess.opening import check_pixels, is_jpeg, open_checked, oriented_size

logger = logging.getLogger(__name__)

# Pillow's ImageOps.exif_transpose, orientation by orientation (EXIF 2.3, tag 0x0112).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes whose pixels libjpeg-turbo turns into Pillow's RGB itself: YCbCr/RGB files and greyscale
# (replicated, as Pillow's L -> RGB does). CMYK/YCCK go to Pillow, whose Adobe inversion and
# CMYK -> RGB formula are the reference.
_TURBO_MODES = ("RGB", "L")


@dataclass(frozen=True)
class DecodeTolerance:
    """How far fast mode may move an image's results from exact mode's (measured in docs/decoding.md)."""

    mean_levels: float  # mean |d| over the model's input crop, in levels of 255
    probability: float  # max |d| of any softmax probability
    entropy: float  # |d| of the softmax entropy, nats
    channel_mean: float  # |d| of a stored channel mean, levels of 255
    channel_std: float  # |d| of a stored channel standard deviation, levels of 255


# Per image, against exact mode (docs/decoding.md): the project's bounds for fast mode (0.03 on any probability,
# 1.5 levels on a channel mean) plus the model's input and the entropy (0.25 nats is ~6% of the seeded random
# model's ~4-nat entropies). A reduced image has less pixel-level variance than the full one, so its channel
# std is lower: measured up to 11 levels on native-resolution textures at 1/4 (18 at Pillow's 1/8).
FAST_DECODE_TOLERANCE = DecodeTolerance(
    mean_levels=1.5, probability=0.03, entropy=0.25, channel_mean=1.5, channel_std=12.0
)
# A reduced decode keeps the short side >= 2.25x the resize size, so the resize's antialias filter still
# shapes the pixels. Drafting down to the resize size (Pillow's rule) moved real photos of 512-767 px by
# 5.4 levels on average and a probability by 0.088; on native-resolution textures every ratio up to 2.0
# broke the tolerance (2.0: 1.7 levels, 0.049), from 2.15 up none did (<= 0.9 levels, 0.011, 0.11 nats).
# Phone photos (3024 px) still decode at 1/4.
DRAFT_MARGIN = 2.25
# Above this many output pixels Pillow's decode into its own buffer beats simplejpeg plus the copy into Pillow
# (a full 12 MP phone photo in exact mode); every draft-scaled or ImageNet-sized decode is far below it.
MAX_TURBO_PIXELS = 2_000_000


@dataclass(frozen=True)
class RgbImage:
    image: Image.Image  # RGB, EXIF-oriented; reduced by the DCT scale in a draft decode
    width: int  # the file's full size after orientation
    height: int
    mode: str  # as stored in the file, before conversion to RGB
    format: str | None


def draft_floor(resize_size: int | None) -> int | None:
    """The smallest side a reduced decode may keep for a transform resizing to `resize_size` (None: no reduction)."""
    return math.ceil(DRAFT_MARGIN * resize_size) if resize_size else None


def draft_scale(size: tuple[int, int], draft_size: int | None) -> int:
    """The 1/scale Pillow's draft(None, (d, d)) picks in open_checked: 8, 4, 2 or 1 (none below 2d)."""
    if not draft_size or min(size) < 2 * draft_size:
        return 1
    ratio = min(size[0] // draft_size, size[1] // draft_size)
    return next(s for s in (8, 4, 2, 1) if ratio >= s)


def decode_rgb(data: bytes, resize_size: int | None = None) -> RgbImage:
    """Bytes to an oriented RGB image as Decoder does (same sizes, modes, errors), faster in both modes.

    `resize_size` is HostTransform.draft_size: None (exact mode) decodes at full size, Pillow's pixels
    bit for bit. In fast mode an image whose short side is at least twice draft_floor() is reduced by
    1/2, 1/4 or 1/8, keeping that floor: a JPEG in libjpeg-turbo's IDCT (Pillow's draft pixels at that
    scale, bit for bit), any other format by a box reduce() after Pillow's full decode. Statistics and
    tensor then come from the reduced image, within FAST_DECODE_TOLERANCE of exact mode. Errors are
    the Pillow path's UnusableImage categories.
    """
    floor = draft_floor(resize_size)
    decoded = decode_jpeg_turbo(data, floor) if is_jpeg(data) else None
    if decoded is not None:
        return decoded
    rgb = decode_pillow(data, floor)
    scale = draft_scale(rgb.image.size, floor)
    if rgb.format == "JPEG" or scale == 1:  # a JPEG Pillow decoded is already draft-scaled
        return rgb
    return RgbImage(rgb.image.reduce(scale), rgb.width, rgb.height, rgb.mode, rgb.format)


def decode_jpeg_turbo(data: bytes, draft_size: int | None) -> RgbImage | None:
    """simplejpeg's decode of a plain JPEG (at the draft's scale); None where Pillow must decide.

    Pillow decodes CMYK/YCCK (its Adobe inversion and CMYK formula are the reference), MPO, images
    over MAX_TURBO_PIXELS after scaling, and any data libjpeg warns about.
    """
    try:
        header = Image.open(io.BytesIO(data))  # reads the markers up to the frame header only
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return None
    if header.format != "JPEG" or header.mode not in _TURBO_MODES:
        return None
    check_pixels(header)  # before any pixel is decoded: TOO_LARGE, as the Pillow path says
    width, height = header.size
    scale = draft_scale(header.size, draft_size)
    if math.ceil(width / scale) * math.ceil(height / scale) > MAX_TURBO_PIXELS:
        return None
    try:
        # strict: libjpeg's warnings (premature end, corrupt segment) raise, and Pillow decides.
        pixels = simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_width=math.ceil(width / scale), min_height=math.ceil(height / scale)
        )
    except ValueError as exc:
        logger.debug("simplejpeg declined (%s); decoding with Pillow", exc)
        return None
    if pixels.shape[:2] != (math.ceil(height / scale), math.ceil(width / scale)):
        return None  # a scale Pillow would not pick: keep the reference's pixels
    image = Image.fromarray(pixels)
    orientation = header.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
        if orientation >= 5:
            width, height = height, width
    return RgbImage(image, width, height, header.mode, header.format)


def decode_pillow(data: bytes, draft_size: int | None) -> RgbImage:
    """Decoder's own steps: open_checked (draft for large JPEGs), exif_transpose, convert("RGB")."""
    image, size = open_checked(data, draft_size)
    mode, fmt = image.mode, image.format
    width, height = oriented_size(size, image)
    ImageOps.exif_transpose(image, in_place=True)
    # For an animated GIF this is the first frame, the one Image.open positions on.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return RgbImage(rgb, width, height, mode, fmt)
