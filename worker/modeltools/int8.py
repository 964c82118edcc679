"""Post-training static int8 quantization of a (logits, embedding) ResNet, behind one small interface.

Engines (measured by bench/int8_engines.py; figures and the choice in docs/model-tools.md):
- "openvino" (default): ONNX export, NNCF post-training quantization, OpenVINO's CPU plugin.
- "onnxruntime": ONNX export, ONNX Runtime's quantize_static (QDQ, per-channel, U8S8).
- "pt2e": torch.export + torchao's X86InductorQuantizer (PT2E), compiled ahead of time by AOTInductor.
The engines live in int8_runtimes.py (OpenVINO, ONNX Runtime) and int8_pt2e.py; int8_engine.py is
their common interface. The older FX
graph mode flow is measured in bench/ only: its quantized tensors are deprecated in PyTorch.
"""

from collections.abc import Sequence

import torch
from torch import nn

from imagebatch.worker.devices import cpu_has_vnni
from imagebatch.worker.modeltools.int8_engine import Int8Model, Int8Unsupported, Recipe
from imagebatch.worker.modeltools.int8_pt2e import Pt2eModel
from imagebatch.worker.modeltools.int8_runtimes import OpenVinoModel, OrtModel

DEFAULT_ENGINE = "openvino"
ENGINES: dict[str, type[Int8Model]] = {cls.engine: cls for cls in (OpenVinoModel, OrtModel, Pt2eModel)}


def engine_class(engine: str) -> type[Int8Model]:
    try:
        return ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown int8 engine {engine!r}: choose one of {', '.join(sorted(ENGINES))}") from None


def engine_recipe(engine: str, vnni: bool | None = None) -> tuple[type[Int8Model], Recipe]:
    """The engine and the recipe it quantizes with on this CPU (`vnni`: whether it has an int8 dot product,
    detected when None); Int8Unsupported when the engine refuses such a CPU."""
    cls = engine_class(engine)
    vnni = cpu_has_vnni() if vnni is None else vnni
    if reason := cls.refusal(vnni):
        raise Int8Unsupported(reason)
    return cls, cls.recipe(vnni)


def quantize_model(
    net: nn.Module,
    calibration_batches: Sequence[torch.Tensor],
    engine: str = DEFAULT_ENGINE,
    vnni: bool | None = None,
) -> Int8Model:
    """An int8 version of `net` calibrated on `calibration_batches` (float32 N×3×H×W, normalised), made
    as for a CPU with (or without) VNNI: this one's when `vnni` is None."""
    if not calibration_batches:
        raise ValueError("int8 calibration needs at least one batch of images")
    cls, recipe = engine_recipe(engine, vnni)
    return cls.quantize(net, calibration_batches, recipe)
