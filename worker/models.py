"""Load a served ResNet through torchvision as one module giving logits and embedding; keep each loaded once."""

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from imagebatch.core.catalog import MODELS, ModelSpec
from imagebatch.worker.fold import fold_batchnorm
from imagebatch.worker.gpu import DevicePlan, maybe_compile, plan_for
from imagebatch.worker.preprocess import WeightsTransform

logger = logging.getLogger(__name__)

_HASH_BLOCK = 1024 * 1024


class ModelUnavailable(Exception):
    """A model that cannot run on this worker; the message tells the user what to do."""


class ResNetWithEmbedding(nn.Module):
    """A torchvision ResNet's own submodules, returning (logits, pooled features) from one pass."""

    def __init__(self, resnet: torchvision.models.ResNet) -> None:
        super().__init__()
        self.features = nn.Sequential(
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.maxpool,
            resnet.layer1,
            resnet.layer2,
            resnet.layer3,
            resnet.layer4,
        )
        self.avgpool = resnet.avgpool
        self.fc = resnet.fc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.fc(embedding), embedding


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec  # a custom model's: its base architecture's
    weights: WeightsEnum | None  # None for a custom model
    net: nn.Module  # the eager ResNetWithEmbedding (Grad-CAM, export, int8 quantization): (logits, embedding)
    transform: WeightsTransform
    labels: list[str]
    weights_path: Path
    weights_sha256: str
    device: str
    plan: DevicePlan  # how its inputs travel to `device`
    custom: str | None = None  # a custom model's name:version
    # What fp32/bf16/fp16 forwards run: `net` with BatchNorm folded (and torch.compile'd under COMPILE).
    forward_net: nn.Module | None = None
    calibration_keys: tuple[str, ...] = ()  # a custom model's int8 calibration images (blob keys), in order

    @property
    def weights_name(self) -> str:
        """The weights' identity, the key of their label set: torchvision's name, or a custom file's SHA-256."""
        return self.weights_sha256 if self.custom else self.spec.weights_name

    @property
    def inference_net(self) -> nn.Module:
        return self.forward_net if self.forward_net is not None else self.net

    @property
    def key(self) -> str:
        """What tells loaded models apart (their preprocessing may differ, e.g. a custom image size)."""
        return f"custom:{self.weights_sha256}" if self.custom else self.spec.name


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


def load_model(name: str, device: str, plan: DevicePlan | None = None) -> LoadedModel:
    """Build the model from its official weights file on `device` (plan: the device's, without extras)."""
    spec = get_spec(name)
    path = ensure_weights(spec)
    weights = weights_enum(spec)
    plan = plan or plan_for(device)
    try:
        resnet = getattr(torchvision.models, spec.name)(weights=weights)
    except Exception as exc:
        raise ModelUnavailable(
            f"weights file {path} could not be loaded ({type(exc).__name__}: {str(exc)[:200]}): "
            f"replace it with the official file from {weights.url}"
        ) from exc
    net = ResNetWithEmbedding(resnet).eval().requires_grad_(False)
    # channels_last lets oneDNN/cuDNN pick their fastest convolution kernels. (Module.to accepts
    # a device and a memory format together; torch's overloads do not list that pair.)
    net = net.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    loaded = LoadedModel(
        spec=spec,
        weights=weights,
        net=net,
        forward_net=serving_net(net, plan),
        transform=weights.transforms(),
        labels=list(weights.meta["categories"]),
        weights_path=path,
        weights_sha256=sha256_file(path),
        device=device,
        plan=plan,
    )
    logger.info("loaded %s (%s) on %s, sha256 %s", name, spec.weights_name, device, loaded.weights_sha256)
    return loaded


def serving_net(net: nn.Module, plan: DevicePlan) -> nn.Module:
    """The forward the chunks run: BatchNorm folded into the convolutions (about +13-25% on a CPU,
    same outputs to float rounding: README "Fidelity"), compiled when the plan says so."""
    return maybe_compile(fold_batchnorm(net), plan)


class ModelRegistry:
    """The models a worker serves, each loaded once on first use; threads asking meanwhile wait for it."""

    def __init__(self, device: str, plan: DevicePlan) -> None:
        self.device, self.plan = device, plan
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> LoadedModel:
        """The loaded model; ModelUnavailable (with the fix) when it cannot run here."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            loading = self._loading.setdefault(name, threading.Lock())
        # One lock per model: loading resnet50 does not hold up a chunk that needs resnet18.
        with loading:
            with self._lock:
                if name in self._loaded:
                    return self._loaded[name]
            model = load_model(name, self.device, self.plan)
            with self._lock:
                self._loaded[name] = model
        return model

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)
