"""The device plan: how images travel to the model (uint8 pinned copies and device normalization on CUDA,
the exact float path elsewhere), optional torch.compile and GPU JPEG decode; moving a batch to the device.

One worker process per GPU: start each with CUDA_VISIBLE_DEVICES=<n> so it sees one device as cuda:0.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from imagebatch.worker.preprocess import (
    Decoder,
    PixelBudget,
    RenditionMaker,
    WeightsTransform,
    host_transform,
    normalize_uint8,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePlan:
    """How images travel to the model on one device; chosen once from the device and settings."""

    device: str
    uint8_input: bool  # host sends uint8 CHW (4x fewer bytes); the device normalizes
    pin_memory: bool
    compile: bool
    gpu_decode: bool

    def decoder(
        self,
        transform: WeightsTransform,
        fast: bool = False,
        renditions: RenditionMaker | None = None,
        budget: PixelBudget | None = None,
    ) -> Decoder:
        """The host half of `transform` (weights.transforms()) for this plan; `fast`: the fast decode mode;
        `renditions`: also make each image's thumbnail (and preview); `budget`: pixels decoded at once."""
        host = host_transform(transform, uint8_input=self.uint8_input, fast=fast)
        device = self.device if self.gpu_decode else None
        return Decoder(host, gpu_device=device, renditions=renditions, budget=budget)


def plan_for(device: str, compile_model: bool = False, gpu_decode: bool = False) -> DevicePlan:
    """CUDA gets the transfer-saving path and the optional extras; anything else the exact CPU path."""
    on_cuda = torch.device(device).type == "cuda"
    return DevicePlan(
        device=device,
        uint8_input=on_cuda,
        pin_memory=on_cuda,
        compile=on_cuda and compile_model,
        gpu_decode=on_cuda and gpu_decode,
    )


def to_model_input(tensors: Sequence[torch.Tensor], transform: WeightsTransform, plan: DevicePlan) -> torch.Tensor:
    """One batch on the model's device in channels_last, normalized exactly like weights.transforms()."""
    # Copied straight into a channels_last batch: one pass, no stack-then-convert.
    first = tensors[0]
    batch = torch.empty(
        (len(tensors), *first.shape), dtype=first.dtype, device=first.device, memory_format=torch.channels_last
    )
    for row, tensor in zip(batch, tensors, strict=True):
        row.copy_(tensor)
    if plan.pin_memory and not batch.is_cuda:  # GPU-decoded images are already there
        batch = batch.pin_memory()
    batch = batch.to(plan.device, non_blocking=plan.pin_memory)
    if batch.dtype == torch.uint8:
        batch = normalize_uint8(batch, transform)
    return batch.contiguous(memory_format=torch.channels_last)


def maybe_compile(net: torch.nn.Module, plan: DevicePlan) -> torch.nn.Module:
    """torch.compile on CUDA when IMAGEBATCH_COMPILE is set: slower first batch, faster after."""
    if not plan.compile:
        return net
    logger.info("compiling the model for %s (first batch will be slow)", plan.device)
    # An OptimizedModule (a Module subclass) wrapping `net`; torch types compile()'s result as a plain callable.
    return cast(torch.nn.Module, torch.compile(net))
