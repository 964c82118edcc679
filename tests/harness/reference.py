"""torchvision's own single-image pipeline, computed independently of imagebatch's worker."""

from functools import cache
from pathlib import Path

import torch
import torchvision
from PIL import Image, ImageOps

from imagebatch.core.catalog import MODELS


@cache
def _model(name: str, torch_home: str) -> torch.nn.Module:
    spec = MODELS[name]
    model = getattr(torchvision.models, name)()
    checkpoint = Path(torch_home) / "hub" / "checkpoints" / spec.weights_file
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return model.eval()


def reference_probabilities(name: str, torch_home: Path, image_path: Path) -> torch.Tensor:
    """Softmax over the 1000 classes: weights.transforms() on the PIL image, one image, fp32."""
    spec = MODELS[name]
    weights = getattr(torchvision.models, spec.weights_enum)[spec.weights_member]
    with Image.open(image_path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    batch = weights.transforms()(rgb).unsqueeze(0)
    with torch.inference_mode():
        return _model(name, str(torch_home))(batch).softmax(dim=1)[0]


def reference_labels(name: str) -> list[str]:
    spec = MODELS[name]
    return getattr(torchvision.models, spec.weights_enum)[spec.weights_member].meta["categories"]
