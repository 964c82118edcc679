"""Folding BatchNorm into the convolutions keeps the model's function and its two outputs."""

import pytest
import torch
from torch import nn

from imagebatch.worker.fold import fold_batchnorm


def test_folded_model_matches_and_original_is_untouched(resnet18) -> None:
    before = {k: v.clone() for k, v in resnet18.net.state_dict().items()}
    folded = fold_batchnorm(resnet18.net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in resnet18.net.modules()) == 20
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        (logits, embedding), (ref_logits, ref_embedding) = folded(x), resnet18.net(x)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(embedding, ref_embedding, rtol=1e-4, atol=1e-4)
    assert all(torch.equal(v, before[k]) for k, v in resnet18.net.state_dict().items())


def test_training_mode_is_refused() -> None:
    net = torch.nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(net)
