"""Export a (logits, embedding) ResNet to ONNX and TorchScript, with the model's card embedded."""

import copy
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from imagebatch.worker.models import LoadedModel

logger = logging.getLogger(__name__)

ONNX_OPSET = 18  # ai.onnx 18: current exporter's baseline; read by ONNX Runtime >= 1.14 and OpenVINO
INPUT_NAME = "input"
OUTPUT_NAMES = ("logits", "embedding")
TORCHSCRIPT_CARD = "imagebatch.json"  # the name of the _extra_files entry holding the card


@dataclass(frozen=True)
class ModelCard:
    """What a consumer of an exported file needs to use it without imagebatch."""

    name: str
    classes: tuple[str, ...]
    transforms: dict[str, Any]  # resize, crop, interpolation, mean, std
    weights_sha256: str

    def as_properties(self) -> dict[str, str]:
        """Flat string properties, as ONNX metadata_props hold them."""
        return {
            "imagebatch.model": self.name,
            "imagebatch.classes": json.dumps(list(self.classes)),
            "imagebatch.transforms": json.dumps(self.transforms, sort_keys=True),
            "imagebatch.weights_sha256": self.weights_sha256,
            "imagebatch.input": f"{INPUT_NAME}: float32 Nx3xHxW, normalised as imagebatch.transforms",
            "imagebatch.outputs": json.dumps(list(OUTPUT_NAMES)),
        }

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> "ModelCard":
        return cls(
            name=props["imagebatch.model"],
            classes=tuple(json.loads(props["imagebatch.classes"])),
            transforms=json.loads(props["imagebatch.transforms"]),
            weights_sha256=props["imagebatch.weights_sha256"],
        )


def describe_transforms(transform: Any) -> dict[str, Any]:
    """The parameters of torchvision's ImageClassification preset (weights.transforms()) as JSON data."""
    return {
        "resize": list(transform.resize_size),
        "crop": list(transform.crop_size),
        "interpolation": transform.interpolation.value,
        "mean": list(transform.mean),
        "std": list(transform.std),
        "antialias": bool(transform.antialias),
    }


def crop_size(card: ModelCard) -> int:
    return int(card.transforms["crop"][0])


def _plain_copy(net: nn.Module) -> nn.Module:
    """An fp32, contiguous-format eval copy on the CPU: exporters trace memory-format conversions otherwise,
    and the example input is a CPU tensor (a worker's model may live on a GPU)."""
    return copy.deepcopy(net).cpu().to(memory_format=torch.contiguous_format).float().eval()


def onnx_model(net: nn.Module, size: int, opset: int = ONNX_OPSET) -> onnx.ModelProto:
    """`net` as an ONNX graph: input `input` (float32 N×3×size×size, dynamic N), outputs logits, embedding."""
    example = torch.randn(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        _plain_copy(net),
        (example,),
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        dynamo=True,
        dynamic_shapes=({0: batch},),
        optimize=True,
        verbose=False,
    )
    if program is None:  # dynamo=True always builds a program; None is the legacy exporter's answer
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    return program.model_proto


def export_onnx(net: nn.Module, path: Path, card: ModelCard, opset: int = ONNX_OPSET) -> Path:
    """Write `net` as one self-contained ONNX file with a dynamic batch axis and the card in metadata_props."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = onnx_model(net, crop_size(card), opset)
    onnx.helper.set_model_props(model, card.as_properties())
    onnx.checker.check_model(model)
    # One file (ResNet-50 is ~100 MB, far under protobuf's 2 GB limit): easy to ship and to hash.
    onnx.save_model(model, str(path), save_as_external_data=False)
    logger.info("exported %s to ONNX opset %d at %s", card.name, opset, path)
    return path


def read_onnx_card(path: Path) -> ModelCard:
    model = onnx.load(str(path), load_external_data=False)
    return ModelCard.from_properties({p.key: p.value for p in model.metadata_props})


def export_torchscript(net: nn.Module, path: Path, card: ModelCard) -> Path:
    """Write `net` traced to TorchScript; the card is the `imagebatch.json` extra file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = crop_size(card)
    extra = {TORCHSCRIPT_CARD: json.dumps(card.as_properties(), sort_keys=True)}
    # TorchScript is deprecated upstream (FutureWarning on every call) but still the format asked for.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(_plain_copy(net), torch.randn(2, 3, size, size))
        torch.jit.save(traced, str(path), _extra_files=extra)
    logger.info("exported %s to TorchScript at %s", card.name, path)
    return path


def load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, ModelCard]:
    extra = {TORCHSCRIPT_CARD: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module.eval(), ModelCard.from_properties(json.loads(extra[TORCHSCRIPT_CARD]))


def card_for(model: LoadedModel) -> ModelCard:
    """The card of a model the worker loaded (built-in or custom)."""
    return ModelCard(
        name=model.spec.name,
        classes=tuple(model.labels),
        transforms=describe_transforms(model.transform),
        weights_sha256=model.weights_sha256,
    )
