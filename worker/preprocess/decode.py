"""Decode image bytes like torchvision's reference: pixel limit, draft decode, EXIF orientation, RGB, statistics,
and the thumbnail (and preview) made from the decoded picture."""

import io
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image, ImageStat

from imagebatch.worker.preprocess.budget import PixelBudget, header_pixels
from imagebatch.worker.preprocess.opening import check_pixels, is_jpeg, oriented_size
from imagebatch.worker.preprocess.renditions import RenditionMaker, Renditions
from imagebatch.worker.preprocess.transforms import HostTransform, Uint8Transform
from imagebatch.worker.preprocess.turbo import decode_pillow, decode_rgb


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

        Exact mode takes Pillow's steps as torchvision documents them. Fast mode decodes JPEGs with
        libjpeg-turbo (simplejpeg) and reduces images whose short side is at least 2 x 2.25 x the resize
        size by 1/2-1/8, keeping it >= 2.25 x (turbo.decode_rgb, within FAST_DECODE_TOLERANCE:
        docs/decoding.md); sizes stay the file's, statistics and tensor come from the reduced image.
        """
        if self._on_device is not None and is_jpeg(data):
            return self._decode_on_device(data, *self._on_device)
        draft = self.transform.draft_size  # None in exact mode
        if self.budget is None:
            return self._decode(data, draft)
        # Held until the decoded picture, its RGB copy and its renditions are gone (on return).
        with self.budget.hold(header_pixels(data, draft)):
            return self._decode(data, draft)

    def _decode(self, data: bytes, draft: int | None) -> DecodedImage:
        decoded = decode_rgb(data, draft) if draft else decode_pillow(data, None)
        rgb, mode, fmt = decoded.image, decoded.mode, decoded.format
        width, height = decoded.width, decoded.height
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
            mode, (width, height) = header.mode, oriented_size(header.size, header)
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
