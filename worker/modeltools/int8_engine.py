"""The interface every int8 engine implements, and what the engines share."""

import copy
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

logger = logging.getLogger(__name__)

MAX_BATCH = 4096
Outputs = tuple[torch.Tensor, torch.Tensor]
Recipe = dict[str, bool]  # an engine's settings that depend on the CPU: in the cache key and the job's record


class Int8Unsupported(ValueError):
    """This engine will not quantize for this CPU; the message says why and what to use instead."""


class Int8Model(ABC):
    """A quantized model called like ResNetWithEmbedding: float32 N×3×H×W in, (logits, embedding) out.

    Calls may come from several threads at once: ONNX Runtime sessions are thread-safe, OpenVINO
    gets one infer request per thread, and AOTInductor's runner makes concurrent calls take turns.
    """

    engine: ClassVar[str]
    artefact: ClassVar[str]  # file name of the saved model inside a cache entry's directory

    @classmethod
    def recipe(cls, vnni: bool) -> Recipe:
        """The settings this engine quantizes with for a CPU with (or without) an int8 dot product."""
        return {}

    @classmethod
    def refusal(cls, vnni: bool) -> str | None:
        """Why this engine must not serve int8 on such a CPU, or None."""
        return None

    @classmethod
    @abstractmethod
    def quantize(cls, net: nn.Module, batches: Sequence[torch.Tensor], recipe: Recipe) -> "Int8Model":
        """Calibrate on `batches` and convert `net` (left unchanged) with `recipe` (from recipe())."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> "Int8Model":
        """The model saved in `directory` by `save`, ready to run."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the quantized model into `directory` as `artefact` (plus side files if any)."""

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> Outputs: ...

    def with_streams(self, streams: int) -> "Int8Model":
        """This model set up so `streams` calls from as many threads run side by side, each on threads()
        threads (a worker's forward slots). Engines whose concurrent calls already do so return self."""
        return self


def plain_copy(net: nn.Module) -> nn.Module:
    """An fp32 eval copy in the default memory format: what exporters and observers expect."""
    return copy.deepcopy(net).to(memory_format=torch.contiguous_format).float().eval().requires_grad_(False)


def batch_dim() -> torch.export.Dim:
    return torch.export.Dim("batch", min=1, max=MAX_BATCH)
