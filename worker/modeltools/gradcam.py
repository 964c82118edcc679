"""Grad-CAM of layer4 of a ResNetWithEmbedding: an 8-bit heatmap and a colour overlay, as PNG bytes."""

import io
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imagebatch.worker.models import ResNetWithEmbedding
from imagebatch.worker.preprocess import ResizeCrop
from imagebatch.worker.preprocess.transforms import WeightsTransform

logger = logging.getLogger(__name__)

OVERLAY_ALPHA = 0.45  # weight of the colour map over the crop


@dataclass(frozen=True)
class GradCam:
    """A class's Grad-CAM for one image, at the model's input resolution."""

    class_index: int
    probability: float  # softmax probability of class_index
    heatmap: np.ndarray  # float32 H×W in [0, 1], min-max scaled

    def grey(self) -> np.ndarray:
        """The heatmap as 8-bit grey (0 = least, 255 = most evidence for the class)."""
        return np.round(self.heatmap * 255.0).astype(np.uint8)


def _check_class(class_index: int, classes: int) -> None:
    if isinstance(class_index, bool) or not isinstance(class_index, int):
        raise TypeError(f"class must be an integer index, got {class_index!r}")
    if not 0 <= class_index < classes:
        raise ValueError(f"class {class_index} is out of range: the model has {classes} classes (0 to {classes - 1})")


def _min_max(cam: torch.Tensor) -> torch.Tensor:
    low, high = cam.min(), cam.max()
    # A flat map (no positive evidence anywhere) stays all zeros rather than dividing by zero.
    return (cam - low) / (high - low) if high > low else torch.zeros_like(cam)


def grad_cam(net: ResNetWithEmbedding, image: torch.Tensor, class_index: int | None = None) -> GradCam:
    """Grad-CAM (Selvaraju et al.) of `class_index` (default: the top-1 class) for one preprocessed image.

    `image` is 3×H×W, normalised as the model's transforms do. The forward is spelled out through
    the model's own submodules instead of hooks, so a model shared with concurrent batches is never
    touched; it runs in fp32 with gradients on, whatever the caller's inference mode.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one 3×H×W image tensor, got shape {tuple(image.shape)}")
    classes = net.fc.out_features
    if class_index is not None:
        _check_class(class_index, classes)
    with torch.inference_mode(False), torch.enable_grad():
        device = next(net.parameters()).device  # a worker's model may live on a GPU
        x = image.detach().clone().float().unsqueeze(0).to(device)
        activations = net.features(x).float()  # layer4's output: 1×C×h×w
        activations.requires_grad_(True)
        logits = net.fc(torch.flatten(net.avgpool(activations), 1))[0]
        chosen = int(logits.argmax()) if class_index is None else class_index
        (gradients,) = torch.autograd.grad(logits[chosen], activations)
    with torch.no_grad():
        weights = gradients.mean(dim=(2, 3), keepdim=True)  # global-average-pooled gradients
        cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=tuple(image.shape[1:]), mode="bilinear", align_corners=False)[0, 0]
        probability = float(torch.softmax(logits.detach().float(), dim=0)[chosen])
    heatmap = _min_max(cam).cpu().numpy().astype(np.float32)
    return GradCam(class_index=chosen, probability=probability, heatmap=heatmap)


def jet(values: np.ndarray) -> np.ndarray:
    """The classic 'jet' colour map (blue → cyan → yellow → red) of values in [0, 1], as uint8 RGB."""
    t = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0])  # red, green, blue peak at t = 0.75, 0.5, 0.25
    rgb = np.clip(1.5 - np.abs(4.0 * t - centres), 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def heatmap_png(cam: GradCam) -> bytes:
    """The heatmap as an 8-bit greyscale PNG at the model's input size."""
    return _png(Image.fromarray(cam.grey()))


def overlay_png(crop: Image.Image, cam: GradCam, alpha: float = OVERLAY_ALPHA) -> bytes:
    """`crop` (the model's input crop, RGB) blended with the jet colour map of the heatmap, as PNG."""
    if crop.size != cam.heatmap.shape[::-1]:
        raise ValueError(
            f"crop is {crop.size[0]}×{crop.size[1]} but the heatmap is "
            f"{cam.heatmap.shape[1]}×{cam.heatmap.shape[0]}: pass the model's input crop"
        )
    colours = Image.fromarray(jet(cam.heatmap))
    return _png(Image.blend(crop.convert("RGB"), colours, alpha))


@dataclass(frozen=True)
class Explanation:
    cam: GradCam
    heatmap_png: bytes
    overlay_png: bytes


def explain(
    net: ResNetWithEmbedding, transform: WeightsTransform, image: Image.Image, class_index: int | None = None
) -> Explanation:
    """Grad-CAM of a decoded RGB image through the model's transforms (weights.transforms() or its
    equivalent): heatmap and overlay PNGs, both at the input crop's size."""
    rgb = image.convert("RGB")
    cam = grad_cam(net, transform(rgb), class_index)
    crop = ResizeCrop(transform)(rgb)
    return Explanation(cam=cam, heatmap_png=heatmap_png(cam), overlay_png=overlay_png(crop, cam))
