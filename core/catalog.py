"""The models imagebatch serves, as plain data (no torch import), shared by API and worker."""

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files


@dataclass(frozen=True)
class ModelSpec:
    name: str
    weights_enum: str  # class name in torchvision.models
    weights_member: str
    weights_file: str  # official file name in $TORCH_HOME/hub/checkpoints/
    embedding_dim: int
    num_classes: int = 1000  # the classifier head's outputs (ImageNet-1k)

    @property
    def weights_name(self) -> str:
        return f"{self.weights_enum}.{self.weights_member}"


MODELS: dict[str, ModelSpec] = {
    "resnet18": ModelSpec("resnet18", "ResNet18_Weights", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 512),
    "resnet50": ModelSpec("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 2048),
}

# The names clients choose from (API option, CLI choice), in catalog order.
MODEL_NAMES = tuple(MODELS)


@cache
def builtin_classes(model: str) -> tuple[str, ...]:
    """The ImageNet-1k class names of a built-in model's weights, in index order, without torchvision.

    Both weights carry the same list (tests/core/test_catalog.py checks it against their metadata).
    """
    if model not in MODELS:
        raise KeyError(model)
    text = files("imagebatch.core").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(text.splitlines())


# A custom model's name: what `model=<name>` or `<name>:<version>` refers to (never a built-in name).
CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ModelRef:
    """What a client names: a built-in model, or a custom model's latest version or one version."""

    name: str
    version: int | None = None

    @property
    def builtin(self) -> bool:
        return self.name in MODELS

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


def check_custom_name(name: str) -> str:
    """A name a training job may register a model under; ValueError saying why not."""
    if name in MODELS:
        raise ValueError(f"{name!r} is a built-in model; choose another name for a custom model")
    if not CUSTOM_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a model name: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def parse_model_ref(value: str) -> ModelRef:
    """`resnet18`, `colours` (latest version) or `colours:2` (that version); ValueError otherwise."""
    name, sep, version = value.strip().partition(":")
    if name in MODELS:
        if sep:
            raise ValueError(f"built-in model {name!r} has no versions (got {value!r})")
        return ModelRef(name)
    check_custom_name(name)
    if not sep:
        return ModelRef(name)
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"model version must be a whole number from 1 (got {value!r})")
    return ModelRef(name, int(version))
