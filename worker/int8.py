"""Post-training static int8 quantization of a (logits, embedding) ResNet, behind one small interface.

Engines (measured by bench/int8_engines.py; figures and the choice in docs/model-tools.md):
- "openvino" (default): ONNX export, NNCF post-training quantization, OpenVINO's CPU plugin.
- "onnxruntime": ONNX export, ONNX Runtime's quantize_static (QDQ, per-channel, U8S8).
- "pt2e": torch.export + torchao's X86InductorQuantizer (PT2E), compiled ahead of time by AOTInductor.
The runtime engines live in worker/int8_runtimes.py and register themselves here. The older FX
graph mode flow is measured in bench/ only: its quantized tensors are deprecated in PyTorch.
"""

import copy
import logging
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_ENGINE = "openvino"
MAX_BATCH = 4096
Outputs = tuple[torch.Tensor, torch.Tensor]


class Int8Model(ABC):
    """A quantized model called like ResNetWithEmbedding: float32 N×3×H×W in, (logits, embedding) out.

    Calls may come from several threads at once: ONNX Runtime sessions are thread-safe, OpenVINO
    gets one infer request per thread, and AOTInductor's runner makes concurrent calls take turns.
    """

    engine: ClassVar[str]
    artefact: ClassVar[str]  # file name of the saved model inside a cache entry's directory

    @classmethod
    @abstractmethod
    def quantize(cls, net: nn.Module, batches: Sequence[torch.Tensor]) -> "Int8Model":
        """Calibrate on `batches` and convert `net` (left unchanged)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> "Int8Model":
        """The model saved in `directory` by `save`, ready to run."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the quantized model into `directory` as `artefact` (plus side files if any)."""

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> Outputs: ...


ENGINES: dict[str, type[Int8Model]] = {}


def register(cls: type[Int8Model]) -> type[Int8Model]:
    ENGINES[cls.engine] = cls
    return cls


def engine_class(engine: str) -> type[Int8Model]:
    if "openvino" not in ENGINES:
        import imagebatch.worker.int8_runtimes  # noqa: F401  (registers the runtime engines)
    try:
        return ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown int8 engine {engine!r}: choose one of {', '.join(sorted(ENGINES))}") from None


def quantize_model(net: nn.Module, calibration_batches: Sequence[torch.Tensor], engine: str = DEFAULT_ENGINE) -> Int8Model:
    """An int8 version of `net` calibrated on `calibration_batches` (float32 N×3×H×W, normalised)."""
    if not calibration_batches:
        raise ValueError("int8 calibration needs at least one batch of images")
    return engine_class(engine).quantize(net, calibration_batches)


def plain_copy(net: nn.Module) -> nn.Module:
    """An fp32 eval copy in the default memory format: what exporters and observers expect."""
    return copy.deepcopy(net).to(memory_format=torch.contiguous_format).float().eval().requires_grad_(False)


def batch_dim() -> torch.export.Dim:
    return torch.export.Dim("batch", min=1, max=MAX_BATCH)


def pt2e_program(net: nn.Module, batches: Sequence[torch.Tensor]) -> torch.export.ExportedProgram:
    """The PT2E flow: export, annotate for x86 Inductor, observe `batches`, convert; re-exported."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    example = (batches[0].contiguous(),)
    shapes = ({0: batch_dim()},)
    graph = torch.export.export(plain_copy(net), example, dynamic_shapes=shapes, strict=True).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for batch in batches:
            prepared(batch.contiguous())
    converted = convert_pt2e(prepared)
    return torch.export.export(converted, example, dynamic_shapes=shapes)


@register
class Pt2eModel(Int8Model):
    """torchao PT2E with X86InductorQuantizer, compiled ahead of time by AOTInductor (freezing on).

    AOTInductor rather than torch.compile: the compiled package is the cached artefact, so a worker
    loads it in a second instead of recompiling (minutes on two cores), and one symbolic batch size
    serves every batch.
    """

    engine = "pt2e"
    artefact = "model.pt2"

    def __init__(self, package: Path) -> None:
        self.package = package.read_bytes()  # kept for save(): the loader needs the file only to load
        self.runner = torch._inductor.aoti_load_package(str(package))

    @classmethod
    def quantize(cls, net: nn.Module, batches: Sequence[torch.Tensor]) -> "Pt2eModel":
        program = pt2e_program(net, batches)
        with tempfile.TemporaryDirectory() as tmp:
            package = Path(tmp) / cls.artefact
            # Under no_grad, or Inductor's freezing skips the int8 oneDNN fusions and runs dequantized
            # fp32 kernels silently (pytorch/ao#4566): 3x slower.
            with torch.no_grad():
                torch._inductor.aoti_compile_and_package(
                    program, package_path=str(package), inductor_configs={"freezing": True}
                )
            return cls(package)

    @classmethod
    def load(cls, directory: Path) -> "Pt2eModel":
        return cls(directory / cls.artefact)

    def save(self, directory: Path) -> None:
        (directory / self.artefact).write_bytes(self.package)

    def __call__(self, x: torch.Tensor) -> Outputs:
        with torch.inference_mode():
            logits, embedding = self.runner(x.contiguous())
        return logits, embedding
