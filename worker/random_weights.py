"""Seeded random-init checkpoints under the official file names, for tests and labelled demo runs."""

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from imagebatch.core.catalog import MODELS

logger = logging.getLogger(__name__)

# Logit spread on the calibration inputs: peaked enough that top-1 is clearly defined,
# far from one-hot so that entropy and margins still vary between images.
_TARGET_LOGIT_STD = 3.0


def _calibration_batch(generator: torch.Generator) -> torch.Tensor:
    """Noise at several spatial scales, in the range of normalized images."""
    scales = (4, 8, 16, 32, 56, 112, 224, 224)
    noise = [torch.randn(1, 3, s, s, generator=generator) for s in scales]
    return torch.cat([F.interpolate(n, size=224, mode="bilinear") for n in noise])


@torch.no_grad()
def _calibrate_fc(resnet: torchvision.models.ResNet, generator: torch.Generator) -> float:
    """Rescale and re-centre fc so predictions depend on the image rather than on a common mode.

    Raw random init gives near-uniform softmax for resnet18 and near one-hot, image-independent
    outputs for resnet50; both make top-1 comparisons meaningless.
    """
    pooled: list[torch.Tensor] = []
    hook = resnet.avgpool.register_forward_hook(lambda _m, _i, out: pooled.append(out.flatten(1)))
    resnet.eval()(_calibration_batch(generator))
    hook.remove()
    features = pooled[0]
    mean_feature = features.mean(0)
    spread = ((features - mean_feature) @ resnet.fc.weight.T).std()
    scale = _TARGET_LOGIT_STD / float(spread)
    resnet.fc.weight.mul_(scale)
    resnet.fc.bias.copy_(-resnet.fc.weight @ mean_feature)
    return scale


def write_random_checkpoint(model: str, torch_home: Path, seed: int = 0) -> Path:
    """Write a random-init (NOT trained) state_dict where torchvision looks for the real one."""
    spec = MODELS[model]
    torch.manual_seed(seed)
    resnet = getattr(torchvision.models, spec.name)(weights=None)
    scale = _calibrate_fc(resnet, torch.Generator().manual_seed(seed))
    path = Path(torch_home) / "hub" / "checkpoints" / spec.weights_file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(resnet.state_dict(), path)
    logger.warning("wrote RANDOM weights for %s to %s (seed %d, fc scale %.3g)", model, path, seed, scale)
    return path
