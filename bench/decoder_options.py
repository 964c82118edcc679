"""The decode + preprocess paths the decoder benchmark compares: bytes to a model-ready tensor and image statistics."""

import importlib.util
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageStat
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import functional as F
from torchvision.transforms.v2 import functional as F2

from imagebatch.worker.preprocess import Decoder, NumpyNormalize, ResizeCrop
from imagebatch.worker.preprocess.turbo import (
    RgbImage,
    decode_jpeg_turbo,
    decode_pillow,
    decode_rgb,
    draft_floor,
    draft_scale,
)

DRAFT = 256  # HostTransform.draft_size for resnet18 in fast mode


@dataclass(frozen=True)
class Output:
    tensor: np.ndarray  # float32 3x224x224, normalised
    mean: tuple[float, ...]  # per RGB channel of the decoded image, 0-255
    std: tuple[float, ...]


@dataclass(frozen=True)
class Option:
    name: str
    description: str
    call: Callable[[bytes], Output]


def _stats(image: Image.Image) -> tuple[tuple[float, ...], tuple[float, ...]]:
    stat = ImageStat.Stat(image)
    return tuple(stat.mean), tuple(stat.stddev)


def _pil_path(transform: NumpyNormalize, decode: Callable[[bytes], RgbImage]) -> Callable[[bytes], Output]:
    """A decode giving an RGB image, then Decoder's own statistics and host transform."""

    def call(data: bytes) -> Output:
        rgb = decode(data).image
        mean, std = _stats(rgb)
        return Output(transform(rgb).numpy(), mean, std)

    return call


def _decoder(decoder: Decoder) -> Callable[[bytes], Output]:
    def call(data: bytes) -> Output:
        d = decoder(data)
        return Output(d.tensor.numpy(), d.mean, d.std)

    return call


class Normalise:
    """NumpyNormalize's float math on a uint8 HWC or CHW crop."""

    def __init__(self, transform: Callable) -> None:
        self.mean = np.asarray(transform.mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(transform.std, dtype=np.float32).reshape(3, 1, 1)

    def __call__(self, chw: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(chw).astype(np.float32)
        x /= np.float32(255)
        x -= self.mean
        x /= self.std
        return x


def _eighths(data: bytes) -> tuple[Image.Image, float, tuple[int, int]] | None:
    """simplejpeg at the smallest k/8 scale keeping the short side >= 256 (500x375 -> 3/4): (image, k/8, full size)."""
    import simplejpeg

    header = Image.open(io.BytesIO(data))
    if header.format != "JPEG" or header.mode not in ("RGB", "L") or header.getexif().get(0x0112, 1) != 1:
        return None
    w, h = header.size
    k = next(k for k in range(1, 9) if math.ceil(min(w, h) * k / 8) >= DRAFT or k == 8)
    pixels = simplejpeg.decode_jpeg(data, min_width=math.ceil(w * k / 8), min_height=math.ceil(h * k / 8))
    return Image.fromarray(pixels), k / 8, (w, h)


def _eighths_path(transform: Callable, fallback: Callable[[bytes], Output]) -> Callable[[bytes], Output]:
    """The k/8 decode, then the crop's region resize with its box from the full-size geometry.

    Mapping the box through k/8 keeps the crop where the exact path puts it; a box computed on the
    reduced image's rounded size shifts it by up to half a pixel (measured: 3.5 levels mean |d|).
    """
    resize_crop, normalise = ResizeCrop(transform, fast=True), Normalise(transform)
    resample = F.pil_modes_mapping[transform.interpolation]

    def call(data: bytes) -> Output:
        decoded = _eighths(data)
        region = decoded and resize_crop.crop_region(*decoded[2])
        if not region:
            return fallback(data)
        image, factor, _ = decoded
        mean, std = _stats(image)
        size, box = region
        crop = image.resize(size, resample, box=tuple(v * factor for v in box))
        return Output(normalise(np.asarray(crop).transpose(2, 0, 1)), mean, std)

    return call


def _pyturbojpeg() -> Callable[[bytes], RgbImage] | None:
    """PyTurboJPEG (ctypes over the system's libturbojpeg) at the draft's scale; None where it is missing."""
    try:
        from turbojpeg import TJPF_RGB, TurboJPEG

        turbo = TurboJPEG()
    except (ImportError, RuntimeError, OSError):
        return None

    def decode(data: bytes) -> RgbImage:
        header = Image.open(io.BytesIO(data))
        if header.format != "JPEG" or header.mode not in ("RGB", "L") or header.getexif().get(0x0112, 1) != 1:
            return decode_rgb(data, DRAFT)
        scale = draft_scale(header.size, DRAFT)
        pixels = turbo.decode(data, pixel_format=TJPF_RGB, scaling_factor=(1, scale) if scale > 1 else None)
        return RgbImage(Image.fromarray(pixels), *header.size, header.mode, header.format)

    return decode


def _cv2_resize(transform: Callable) -> Callable[[bytes], Output]:
    """turbo.decode_rgb, cv2 statistics and INTER_AREA resize, center crop, numpy normalise."""
    import cv2

    cv2.setNumThreads(1)
    normalise = Normalise(transform)

    def call(data: bytes) -> Output:
        pixels = np.asarray(decode_rgb(data, DRAFT).image)
        mean, std = cv2.meanStdDev(pixels)
        h, w = pixels.shape[:2]
        scale = 256 / min(h, w)
        size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        resized = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        top, left = round((resized.shape[0] - 224) / 2), round((resized.shape[1] - 224) / 2)
        crop = resized[top : top + 224, left : left + 224]
        return Output(normalise(crop.transpose(2, 0, 1)), tuple(mean.ravel()), tuple(std.ravel()))

    return call


def _tensor_resize(transform: Callable, chw: torch.Tensor) -> torch.Tensor:
    resized = F2.resize(chw, list(transform.resize_size), interpolation=transform.interpolation, antialias=True)
    return F2.center_crop(resized, list(transform.crop_size))


def _tv_resize(transform: Callable) -> Callable[[bytes], Output]:
    """turbo.decode_rgb, ImageStat, torchvision's uint8 antialias resize kernel, numpy normalise."""
    normalise = Normalise(transform)

    def call(data: bytes) -> Output:
        rgb = decode_rgb(data, DRAFT).image
        mean, std = _stats(rgb)
        chw = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
        return Output(normalise(_tensor_resize(transform, chw).numpy()), mean, std)

    return call


def _torchvision(transform: Callable, exact: Callable[[bytes], Output]) -> Callable[[bytes], Output]:
    """torchvision.io.decode_image (full size, EXIF-oriented), torch statistics, tensor resize; Pillow for the rest."""
    normalise = Normalise(transform)

    def call(data: bytes) -> Output:
        header = Image.open(io.BytesIO(data))
        if (header.format, header.mode) not in {("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "RGBA")}:
            return exact(data)
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        chw = decode_image(raw, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        std, mean = torch.std_mean(chw.flatten(1).float(), dim=1, correction=0)
        tensor = normalise(_tensor_resize(transform, chw).numpy())
        return Output(tensor, tuple(mean.tolist()), tuple(std.tolist()))

    return call


def build_options(transform: Callable) -> list[Option]:
    """Every path, the exact reference first; PyTurboJPEG and cv2 only where they are installed."""
    exact, fast = NumpyNormalize(transform, fast=False), NumpyNormalize(transform, fast=True)
    reference = _decoder(Decoder(exact))
    draft = _pil_path(fast, _decode_draft)
    options = [
        Option("pillow-exact", "Pillow full decode, torchvision's resize (reference)", reference),
        Option("pillow-draft", "Pillow draft() >= 2x256, region resize (today's fast)", _decoder(Decoder(fast))),
        Option("simplejpeg-exact", "simplejpeg full decode (Pillow over 2 MP)", _pil_path(exact, decode_rgb)),
        Option("simplejpeg-draft", "simplejpeg at draft's scale, region resize", draft),
        Option("simplejpeg-eighths", "simplejpeg k/8 to short side >= 256", _eighths_path(transform, draft)),
        Option("pillow-draft576", "Pillow draft() keeping >= 2.25x the resize", _pil_path(fast, _pillow_margin)),
        Option("turbo.decode_rgb", "simplejpeg keeping >= 2.25x; others: reduce()", _pil_path(fast, _decode_fast)),
        Option("draft+tv-resize", "decode_rgb; torchvision uint8 resize", _tv_resize(transform)),
        Option("torchvision", "decode_image full size, tensor resize", _torchvision(transform, reference)),
    ]
    if importlib.util.find_spec("cv2") is not None:  # opencv-python-headless: measured, not a dependency
        cv2_option = Option("draft+cv2-resize", "decode_rgb; cv2 stats + INTER_AREA resize", _cv2_resize(transform))
        options.insert(len(options) - 2, cv2_option)
    pyturbo = _pyturbojpeg()
    if pyturbo is not None:
        options.insert(5, Option("pyturbojpeg-draft", "PyTurboJPEG at draft's scale", _pil_path(fast, pyturbo)))
    return options


def _decode_draft(data: bytes) -> RgbImage:
    """simplejpeg for JPEGs only: no reduce() for other large images."""
    return decode_jpeg_turbo(data, DRAFT) or decode_pillow(data, DRAFT)


def _decode_fast(data: bytes) -> RgbImage:
    return decode_rgb(data, DRAFT)


def _pillow_margin(data: bytes) -> RgbImage:
    """Decoder's Pillow steps with the draft keeping turbo.DRAFT_MARGIN x the resize size."""
    return decode_pillow(data, draft_floor(DRAFT))
