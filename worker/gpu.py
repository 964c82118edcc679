"""The CUDA path: uint8 host tensors pinned and copied asynchronously, normalization on the device,
optional torch.compile and GPU JPEG decode. On a CPU the host transform gives exactly the weights'
transforms' floats and the batch goes to the model as it is.

One worker process per GPU: start each with CUDA_VISIBLE_DEVICES=<n> so it sees one device as cuda:0.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from imagebatch.core.config import settings
from imagebatch.worker.preprocess import NumpyNormalize, ResizeCrop

logger = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class DevicePlan:
    """How images travel to the model on one device; chosen once from the device and settings."""

    device: str
    uint8_input: bool  # host sends uint8 CHW (4x fewer bytes); the device normalizes
    pin_memory: bool
    compile: bool
    gpu_decode: bool


def plan_for(device: str, compile_model: bool = False, gpu_decode: bool = False) -> DevicePlan:
    """CUDA gets the transfer-saving path and the optional extras; anything else the exact CPU path."""
    on_cuda = torch.device(device).type == "cuda"
    return DevicePlan(device=device, uint8_input=on_cuda, pin_memory=on_cuda,
                      compile=on_cuda and compile_model, gpu_decode=on_cuda and gpu_decode)


def current_plan(device: str) -> DevicePlan:
    return plan_for(device, settings.COMPILE, settings.GPU_DECODE)


class Uint8Transform:
    """weights.transforms() minus float conversion and normalization: resize + crop to uint8 CHW.

    Resize and crop run on the PIL image as in weights.transforms(), so only the normalization
    moves (to the device) and, in exact mode, the result is bit-identical after it.
    """

    def __init__(self, transform: Callable, fast: bool = False) -> None:
        self.resize_crop = ResizeCrop(transform, fast)
        self.resize_size, self.crop_size = self.resize_crop.resize_size, self.resize_crop.crop_size
        self.interpolation = self.resize_crop.interpolation

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return F.pil_to_tensor(self.resize_crop(image))

    def __repr__(self) -> str:
        return f"Uint8Transform(resize={self.resize_size}, crop={self.crop_size}, {self.interpolation})"


@lru_cache(maxsize=8)
def host_transform(transform: Callable, plan: DevicePlan, fast: bool = False) -> Callable:
    """What the reader applies on the host: uint8 for a GPU, else the same floats as the weights'
    transforms computed without a torch thread pool (see worker.preprocess). `fast`: resize only
    the cropped region (worker.preprocess). Built once per (transform, plan, fast), not per chunk."""
    return Uint8Transform(transform, fast) if plan.uint8_input else NumpyNormalize(transform, fast)


def to_model_input(tensors: Sequence[torch.Tensor], transform: Callable, plan: DevicePlan) -> torch.Tensor:
    """One batch on the model's device in channels_last, normalized exactly like weights.transforms()."""
    # Copied straight into a channels_last batch: one pass, no stack-then-convert.
    first = tensors[0]
    batch = torch.empty((len(tensors), *first.shape), dtype=first.dtype, device=first.device,
                        memory_format=torch.channels_last)
    for row, tensor in zip(batch, tensors):
        row.copy_(tensor)
    if plan.pin_memory and not batch.is_cuda:  # GPU-decoded images are already there
        batch = batch.pin_memory()
    batch = batch.to(plan.device, non_blocking=plan.pin_memory)
    if batch.dtype == torch.uint8:
        batch = F.normalize(batch.float().div_(255), mean=list(transform.mean), std=list(transform.std))
    return batch.contiguous(memory_format=torch.channels_last)


def maybe_compile(net: torch.nn.Module, plan: DevicePlan) -> torch.nn.Module:
    """torch.compile on CUDA when IMAGEBATCH_COMPILE is set: slower first batch, faster after."""
    if not plan.compile:
        return net
    logger.info("compiling the model for %s (first batch will be slow)", plan.device)
    return torch.compile(net)


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def decode_jpeg_on_device(data: bytes, device: str) -> torch.Tensor:
    """A JPEG decoded by nvJPEG on the GPU and EXIF-oriented: full-size uint8 CHW on `device`."""
    from torchvision.io import ImageReadMode, decode_jpeg

    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)


def resize_crop(image: torch.Tensor, transform: Uint8Transform) -> torch.Tensor:
    """The host transform's resize and crop, on a tensor already on the device."""
    image = F.resize(image, transform.resize_size, interpolation=transform.interpolation, antialias=True)
    return F.center_crop(image, transform.crop_size)
