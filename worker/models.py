"""Load a served ResNet through torchvision, once per process, as one module giving logits and embedding."""

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from imagebatch.core.catalog import MODELS, ModelSpec
from imagebatch.core.config import settings
from imagebatch.worker.devices import Capabilities, detect_capabilities, resolve_device
from imagebatch.worker.gpu import current_plan, maybe_compile

logger = logging.getLogger(__name__)

_HASH_BLOCK = 1024 * 1024


class ModelUnavailable(Exception):
    """A model that cannot run on this worker; the message tells the user what to do."""


class ResNetWithEmbedding(nn.Module):
    """A torchvision ResNet's own submodules, returning (logits, pooled features) from one pass."""

    def __init__(self, resnet: torchvision.models.ResNet) -> None:
        super().__init__()
        self.features = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4,
        )
        self.avgpool = resnet.avgpool
        self.fc = resnet.fc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.fc(embedding), embedding


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    weights: WeightsEnum
    net: ResNetWithEmbedding
    transform: Callable[..., torch.Tensor]
    labels: list[str]
    weights_path: Path
    weights_sha256: str
    device: str

    @property
    def weights_name(self) -> str:
        return self.spec.weights_name


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelUnavailable(f"unknown model {name!r}: choose one of {', '.join(MODELS)}") from None


def weights_enum(spec: ModelSpec) -> WeightsEnum:
    return getattr(getattr(torchvision.models, spec.weights_enum), spec.weights_member)


def checkpoint_dir() -> Path:
    # torch.hub.get_dir() reads $TORCH_HOME at call time, so tests can point it elsewhere.
    return Path(torch.hub.get_dir()) / "checkpoints"


def ensure_weights(spec: ModelSpec) -> Path:
    """The weights file's path, downloading it through torchvision when it is missing."""
    path = checkpoint_dir() / spec.weights_file
    if path.is_file():
        return path
    weights = weights_enum(spec)
    try:
        weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # offline machines fail here with a URLError
        logger.debug("download of %s failed: %r", weights.url, exc)
    if path.is_file():
        return path
    raise ModelUnavailable(
        f"weights file {spec.weights_file} not found in {path.parent} and could not be downloaded "
        f"(offline?): place it there (from {weights.url}) or set TORCH_HOME"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    return detect_capabilities()


def load_model(name: str, device: str | None = None) -> LoadedModel:
    """Build the model from its official weights file; no cache (see get_model)."""
    spec = get_spec(name)
    path = ensure_weights(spec)
    weights = weights_enum(spec)
    device = device or resolve_device(settings.DEVICE, capabilities())
    try:
        resnet = getattr(torchvision.models, spec.name)(weights=weights)
    except Exception as exc:
        raise ModelUnavailable(
            f"weights file {path} could not be loaded ({type(exc).__name__}: {str(exc)[:200]}): "
            f"replace it with the official file from {weights.url}"
        ) from exc
    net = ResNetWithEmbedding(resnet).eval().requires_grad_(False)
    # channels_last lets oneDNN/cuDNN pick their fastest convolution kernels.
    net = net.to(device=device, memory_format=torch.channels_last)
    net = maybe_compile(net, current_plan(device))
    loaded = LoadedModel(
        spec=spec,
        weights=weights,
        net=net,
        transform=weights.transforms(),
        labels=list(weights.meta["categories"]),
        weights_path=path,
        weights_sha256=sha256_file(path),
        device=device,
    )
    logger.info("loaded %s (%s) on %s, sha256 %s", name, spec.weights_name, device, loaded.weights_sha256)
    return loaded


_cache: dict[str, LoadedModel] = {}
_cache_lock = threading.Lock()


def get_model(name: str) -> LoadedModel:
    """The process-wide instance of a model, loaded on first use and then kept."""
    with _cache_lock:
        if name not in _cache:
            _cache[name] = load_model(name)
        return _cache[name]
