"""The host half of weights.transforms(): Pillow resize and crop, then float math in numpy (CPU) or uint8 (CUDA)."""

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F
from torchvision.transforms.v2 import functional as F2

from imagebatch.core.config import DECODE_MODES

Size = tuple[int, int]
Box = tuple[float, float, float, float]


class WeightsTransform(Protocol):
    """A weights.transforms() (torchvision's ImageClassification): called on an image, its parameters read."""

    @property
    def resize_size(self) -> Sequence[int]: ...
    @property
    def crop_size(self) -> Sequence[int]: ...
    @property
    def interpolation(self) -> InterpolationMode: ...
    @property
    def mean(self) -> Sequence[float]: ...
    @property
    def std(self) -> Sequence[float]: ...
    def __call__(self, image: Image.Image) -> torch.Tensor: ...


def fast_decode(mode: str) -> bool:
    """IMAGEBATCH_DECODE_MODE: fast (draft decode of large JPEGs, region resize) or exact."""
    if mode.strip().lower() not in DECODE_MODES:
        raise ValueError(f"IMAGEBATCH_DECODE_MODE must be fast or exact, not {mode!r}")
    return mode.strip().lower() == "fast"


def resized_size(width: int, height: int, short_side: int) -> Size:
    """(width, height) after torchvision resizes the shorter side to `short_side` (no max_size)."""
    short, long = sorted((width, height))
    new_short, new_long = short_side, int(short_side * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


class ResizeCrop:
    """The resize and center crop of weights.transforms() on a PIL image: uint8 in, uint8 out.

    Exact mode gives weights.transforms()' pixels bit for bit. Fast mode resizes only the part of
    the image the center crop keeps, in one Pillow call: the same filter at the same scale, but
    Pillow takes the region's corners as 32-bit floats, so some pixels come out one level (of 255)
    away from the exact path. It does 40% less resampling work.
    """

    def __init__(self, transform: WeightsTransform, fast: bool = False) -> None:
        self.resize_size, self.crop_size = list(transform.resize_size), list(transform.crop_size)
        self.interpolation = transform.interpolation
        self.fast = fast

    def crop_region(self, width: int, height: int) -> tuple[Size, Box] | None:
        """The crop's (width, height) and its box in source pixels; None where the crop would pad."""
        if len(self.resize_size) != 1:
            return None
        resized_w, resized_h = resized_size(width, height, self.resize_size[0])
        crop_h, crop_w = (self.crop_size * 2)[:2]
        if crop_w > resized_w or crop_h > resized_h:
            return None
        # The offsets F.center_crop takes, mapped back onto the source image.
        top, left = round((resized_h - crop_h) / 2.0), round((resized_w - crop_w) / 2.0)
        scale_x, scale_y = width / resized_w, height / resized_h
        box = (left * scale_x, top * scale_y, (left + crop_w) * scale_x, (top + crop_h) * scale_y)
        return (crop_w, crop_h), box

    def __call__(self, image: Image.Image) -> Image.Image:
        region = self.crop_region(*image.size) if self.fast else None
        if region is not None:
            size, box = region
            return image.resize(size, F.pil_modes_mapping[self.interpolation], box=box)
        resized = F.resize(image, self.resize_size, interpolation=self.interpolation, antialias=True)
        return F.center_crop(resized, self.crop_size)


class HostTransform:
    """What the decode threads apply to an RGB image: the Pillow resize and crop, then a subclass's output."""

    def __init__(self, transform: WeightsTransform, fast: bool = False) -> None:
        self.resize_crop = ResizeCrop(transform, fast)
        self.resize_size, self.crop_size = self.resize_crop.resize_size, self.resize_crop.crop_size
        self.interpolation = self.resize_crop.interpolation
        self.fast = fast

    @property
    def draft_size(self) -> int | None:
        """The smallest side a JPEG may keep in a draft decode (fast mode only): resize must still shrink."""
        return int(self.resize_size[0]) if self.fast and self.resize_size else None

    def __call__(self, image: Image.Image) -> torch.Tensor:
        raise NotImplementedError


class NumpyNormalize(HostTransform):
    """The CPU path: weights.transforms()' float32 math in numpy, bit for bit, without a torch thread pool.

    torchvision's float steps (convert_image_dtype, normalize) are torch ops that open an intra-op
    parallel region per image. Called from several decode threads while a forward holds the cores,
    each region waits for busy threads: measured 23 ms per op per image on a 2-core machine under
    load, against well under a millisecond for the same arithmetic in numpy, which stays on the
    calling thread.
    """

    def __init__(self, transform: WeightsTransform, fast: bool = False) -> None:
        super().__init__(transform, fast)
        self.mean = np.asarray(transform.mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(transform.std, dtype=np.float32).reshape(3, 1, 1)
        self.reference = transform

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = self.resize_crop(image)
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
        # Planar uint8 first (a cheap copy), so the float passes below run over contiguous memory;
        # then the same float32 operations in the same order as convert_image_dtype + normalize.
        x = np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32)
        x /= np.float32(255)
        x -= self.mean
        x /= self.std
        return torch.from_numpy(x)

    def __repr__(self) -> str:
        return repr(self.reference)


class Uint8Transform(HostTransform):
    """The CUDA path: resize + crop to uint8 CHW (4x fewer bytes to copy); normalize_uint8 runs on the device.

    Resize and crop run on the PIL image as in weights.transforms(), so only the normalization
    moves and, in exact mode, the result is bit-identical after it.
    """

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return F2.pil_to_tensor(self.resize_crop(image))

    def resize_crop_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """The same resize and crop on a uint8 tensor already on the device (GPU-decoded JPEGs)."""
        image = F2.resize(image, self.resize_size, interpolation=self.interpolation, antialias=True)
        return F2.center_crop(image, self.crop_size)

    def __repr__(self) -> str:
        return f"Uint8Transform(resize={self.resize_size}, crop={self.crop_size}, {self.interpolation})"


def host_transform(transform: WeightsTransform, *, uint8_input: bool, fast: bool = False) -> HostTransform:
    """uint8 for a device that normalizes (CUDA), else exactly the weights' transforms' floats."""
    return Uint8Transform(transform, fast) if uint8_input else NumpyNormalize(transform, fast)


def normalize_uint8(batch: torch.Tensor, transform: WeightsTransform) -> torch.Tensor:
    """A uint8 batch (from Uint8Transform) normalized exactly like weights.transforms(), where it lies."""
    return F2.normalize(batch.float().div_(255), mean=list(transform.mean), std=list(transform.std))
