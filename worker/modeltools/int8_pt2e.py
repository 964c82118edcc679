"""The PyTorch-native int8 engine: torch.export + torchao's X86InductorQuantizer (PT2E), built by AOTInductor."""

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from imagebatch.worker.modeltools.int8_engine import Int8Model, Outputs, Recipe, batch_dim, plain_copy

logger = logging.getLogger(__name__)


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
    def refusal(cls, vnni: bool) -> str | None:
        if vnni:
            return None
        # Measured on an AVX2-only EPYC: top-1 moved on a clearly decided photo with the quantizer's
        # full-range weights and with its reduce_range ones alike.
        return (
            "the pt2e int8 engine needs a CPU with VNNI (avx512_vnni, avx_vnni or amx) and this one has none: "
            "without it oneDNN's uint8 x int8 products saturate and int8 results drift from fp32; "
            "set IMAGEBATCH_INT8_ENGINE=openvino, which corrects for that"
        )

    @classmethod
    def quantize(cls, net: nn.Module, batches: Sequence[torch.Tensor], recipe: Recipe) -> "Pt2eModel":
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
