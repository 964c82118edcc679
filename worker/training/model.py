"""The network a run trains, and the saved custom model: a ResNetWithEmbedding state_dict plus JSON metadata."""

import json
import logging
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.transforms._presets import ImageClassification

from imagebatch.worker.models import (
    ModelUnavailable,
    ResNetWithEmbedding,
    ensure_weights,
    get_spec,
    sha256_file,
    weights_enum,
)
from imagebatch.worker.training.config import TrainingConfig
from imagebatch.worker.training.errors import CustomModelError
from imagebatch.worker.training.files import atomic_write
from imagebatch.worker.training.images import Preprocessing

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.pt"
META_NAME = "model.json"
META_FORMAT = 1


def build_network(config: TrainingConfig, num_classes: int) -> tuple[ResNetWithEmbedding, dict | None]:
    """The base ResNet (pretrained through torchvision, or random) with a new seeded head; and its weights record."""
    spec = get_spec(config.base_model)
    torch.manual_seed(config.seed)
    base = None
    if config.pretrained:
        path, weights = ensure_weights(spec), weights_enum(spec)
        try:
            resnet = getattr(torchvision.models, spec.name)(weights=weights)
        except Exception as exc:
            raise ModelUnavailable(
                f"weights file {path} could not be loaded ({type(exc).__name__}): "
                f"replace it with the official file from {weights.url}"
            ) from exc
        base = {"weights": spec.weights_name, "file": spec.weights_file, "sha256": sha256_file(path)}
    else:
        resnet = getattr(torchvision.models, spec.name)(weights=None)
    resnet.fc = nn.Linear(resnet.fc.in_features, num_classes)
    return ResNetWithEmbedding(resnet), base


def parameter_groups(net: ResNetWithEmbedding, config: TrainingConfig) -> list[dict]:
    """Optimizer groups per mode; transfer freezes the backbone (its BatchNorm statistics too, see set_train_mode)."""
    head, backbone = list(net.fc.parameters()), list(net.features.parameters())
    if config.mode == "transfer":
        net.features.requires_grad_(False)
        return [{"params": head, "lr": config.learning_rate, "name": "head"}]
    if config.mode == "finetune":
        return [
            {"params": backbone, "lr": config.learning_rate * config.backbone_lr_factor, "name": "backbone"},
            {"params": head, "lr": config.learning_rate, "name": "head"},
        ]
    return [{"params": backbone + head, "lr": config.learning_rate, "name": "all"}]


def set_train_mode(net: ResNetWithEmbedding, config: TrainingConfig) -> None:
    net.train()
    if config.mode == "transfer":
        net.features.eval()  # a frozen backbone keeps its running statistics


def save_custom_model(net: ResNetWithEmbedding, meta: dict, directory: Path) -> dict:
    """model.pt (the state_dict) and model.json (meta + the weights' SHA-256); returns the full meta."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu() for key, value in net.state_dict().items()}
    atomic_write(directory / WEIGHTS_NAME, lambda f: torch.save(state, f))
    meta = {
        **meta,
        "format": META_FORMAT,
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": sha256_file(directory / WEIGHTS_NAME),
    }
    atomic_write(directory / META_NAME, lambda f: f.write(json.dumps(meta, indent=1).encode()))
    return meta


def _read_meta(directory: Path) -> dict:
    try:
        meta = json.loads((directory / META_NAME).read_text())
    except FileNotFoundError as exc:
        raise CustomModelError(f"{directory / META_NAME} not found: not a saved custom model") from exc
    except ValueError as exc:
        raise CustomModelError(f"{directory / META_NAME} is not valid JSON: {exc}") from exc
    if meta.get("format") != META_FORMAT:
        raise CustomModelError(f"{directory / META_NAME} has format {meta.get('format')!r}, expected {META_FORMAT}")
    return meta


def load_custom_model(
    path: Path | str, device: str = "cpu"
) -> tuple[ResNetWithEmbedding, ImageClassification, list[str], dict]:
    """(net, transform, classes, meta) of a saved custom model, checked against its recorded SHA-256.

    `path` is the model's folder or its model.pt. The net is a ResNetWithEmbedding in eval mode,
    the transform an ImageClassification preset like weights.transforms(): serve it like a built-in model.
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    meta = _read_meta(directory)
    weights = directory / meta["weights_file"]
    if not weights.is_file():
        raise CustomModelError(f"weights file {weights} not found")
    digest = sha256_file(weights)
    if digest != meta["weights_sha256"]:
        raise CustomModelError(f"{weights} has SHA-256 {digest}, its metadata records {meta['weights_sha256']}")
    resnet = getattr(torchvision.models, meta["architecture"])(weights=None, num_classes=len(meta["classes"]))
    net = ResNetWithEmbedding(resnet)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net = net.eval().requires_grad_(False).to(device)
    transform = Preprocessing.from_dict(meta["preprocessing"]).inference_transform()
    return net, transform, list(meta["classes"]), meta
