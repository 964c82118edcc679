"""BatchNorm folded into the preceding convolutions, for fp32/bf16 inference."""

import logging

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

logger = logging.getLogger(__name__)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An inference copy of `net` (left unchanged) with every conv→BatchNorm pair folded into one conv.

    Uses the eval-mode running statistics, so the copy computes the same function as `net.eval()`
    up to float rounding; it is for inference only (no training, no Grad-CAM hooks on the BNs).
    """
    if net.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (running statistics)")
    # torch.fx's fuse traces the forward, so the (logits, embedding) outputs stay as they were.
    folded = fuse(net, inplace=False)
    remaining = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    if remaining:
        logger.warning("%d BatchNorm layers could not be folded (their input feeds other layers too)", remaining)
    return folded.to(memory_format=torch.channels_last).eval().requires_grad_(False)
