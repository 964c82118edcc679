"""The older torch.ao FX graph mode int8 flow, kept for the engine comparison only.

Not offered by imagebatch.worker.modeltools.int8: PyTorch deprecates the quantized tensors it produces
(torch.quantize_per_tensor & co. warn that they will be removed), and it lost to OpenVINO on
speed and to every other engine on agreement with fp32 (see bench/int8_engines.py).
"""

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from imagebatch.worker.modeltools.int8 import ENGINES
from imagebatch.worker.modeltools.int8_engine import Int8Model, Outputs, plain_copy


class FxModel(Int8Model):
    """torch.ao FX graph mode quantization, x86 backend (fbgemm/oneDNN), traced and frozen."""

    engine = "fx"
    artefact = "model.ts"

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self.module = module

    @classmethod
    def quantize(cls, net: nn.Module, batches: Sequence[torch.Tensor]) -> "FxModel":
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86"
        example = batches[0].contiguous()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
            prepared = prepare_fx(plain_copy(net), get_default_qconfig_mapping("x86"), (example,))
            with torch.no_grad():
                for batch in batches:
                    prepared(batch.contiguous())
                converted = convert_fx(prepared)
                module = torch.jit.freeze(torch.jit.trace(converted, example).eval())
        return cls(module)

    @classmethod
    def load(cls, directory: Path) -> "FxModel":
        torch.backends.quantized.engine = "x86"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return cls(torch.jit.load(str(directory / cls.artefact), map_location="cpu"))

    def save(self, directory: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(self.module, str(directory / self.artefact))

    def __call__(self, x: torch.Tensor) -> Outputs:
        with torch.inference_mode():
            return self.module(x)


# Measured beside the shipped engines (bench only: its quantized tensors are deprecated).
ENGINES[FxModel.engine] = FxModel
