"""Fast (draft) decode vs the exact path: same sizes, close probabilities, exact where nothing shrinks."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worker.devices import Precision
from worker.inference import infer
from worker.reader import DecodedImage, decode, read_image

FP32 = Precision("fp32", "fp32", "cpu")
# Measured on the benchmark's phone photos with the seeded random weights: max |dp| ~0.006.
MAX_PROBABILITY_SHIFT = 0.03


def _read(path: Path, transform, fast: bool) -> DecodedImage:
    outcome = read_image(f"file:{path}", transform, fast)
    assert isinstance(outcome, DecodedImage), outcome
    return outcome


def test_phone_photo_draft_decode_stays_close_to_exact(bench_photos, resnet18) -> None:
    phone = bench_photos[7]
    assert Image.open(phone).size == (4032, 3024) or Image.open(phone).size == (3024, 4032)
    exact, fast = (_read(phone, resnet18.transform, f) for f in (False, True))
    assert (fast.width, fast.height) == (exact.width, exact.height) == Image.open(phone).size
    assert not torch.equal(exact.tensor, fast.tensor), "draft mode did not change the decode"
    assert (exact.tensor - fast.tensor).abs().mean() < 0.05
    assert np.allclose(exact.mean, fast.mean, atol=1.5)
    p_exact, p_fast = (infer(resnet18, [d.tensor], FP32, 5, keep_probabilities=True)[0].probabilities
                       for d in (exact, fast))
    assert np.abs(p_exact - p_fast).max() <= MAX_PROBABILITY_SHIFT


@pytest.mark.parametrize("index", [0, 9])  # an ImageNet-sized JPEG and a PNG: nothing to shrink
def test_small_images_decode_identically_in_both_modes(bench_photos, resnet18, index) -> None:
    exact, fast = (_read(bench_photos[index], resnet18.transform, f) for f in (False, True))
    assert torch.equal(exact.tensor, fast.tensor)
    assert (exact.width, exact.height, exact.mean) == (fast.width, fast.height, fast.mean)


def test_draft_keeps_exif_orientation_and_file_size(resnet18) -> None:
    image = Image.new("RGB", (1600, 1000), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90: reads as 1000 x 1600
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    fast = decode(buffer.getvalue(), resnet18.transform, fast=True)
    exact = decode(buffer.getvalue(), resnet18.transform, fast=False)
    assert (fast.width, fast.height) == (exact.width, exact.height) == (1000, 1600)
    assert fast.tensor.shape == exact.tensor.shape == (3, 224, 224)


def test_decode_mode_setting_is_validated(monkeypatch) -> None:
    from imagebatch.config import settings
    from worker import runner

    monkeypatch.setattr(settings, "DECODE_MODE", "exact")
    assert runner.decode_fast() is False
    monkeypatch.setattr(settings, "DECODE_MODE", "Fast")
    assert runner.decode_fast() is True
    monkeypatch.setattr(settings, "DECODE_MODE", "sloppy")
    with pytest.raises(ValueError, match="fast or exact"):
        runner.decode_fast()
