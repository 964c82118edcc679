"""The models imagebatch serves, as plain data (no torch import), shared by API and worker."""

from dataclasses import dataclass


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
