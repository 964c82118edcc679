"""Fast decode (reduced JPEG decode through libjpeg-turbo, region resize) vs the exact path: same sizes and
statistics, close pixels and probabilities; exact mode is torchvision's preprocessing bit for bit."""

import io
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as F

from imagebatch.core.config import settings
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.devices import Precision
from imagebatch.worker.gpu import DevicePlan, plan_for
from imagebatch.worker.inference import infer
from imagebatch.worker.preprocess import DecodedImage, ResizeCrop, fast_decode, turbo

FP32 = Precision("fp32", "fp32", "cpu")
# Measured on the benchmark's phone photos with the seeded random weights: max |dp| ~0.006.
MAX_PROBABILITY_SHIFT = 0.03


def _read(reader, path: Path, transform, fast: bool) -> DecodedImage:
    """Read as the worker does on a CPU in the given decode mode."""
    outcome = reader.read_image(f"file:{path}", plan_for("cpu").decoder(transform, fast))
    assert isinstance(outcome, DecodedImage), outcome
    return outcome


def test_phone_photo_draft_decode_stays_close_to_exact(bench_photos, resnet18, reader) -> None:
    phone = bench_photos[7]
    assert Image.open(phone).size == (4032, 3024) or Image.open(phone).size == (3024, 4032)
    exact, fast = (_read(reader, phone, resnet18.transform, f) for f in (False, True))
    assert (fast.width, fast.height) == (exact.width, exact.height) == Image.open(phone).size
    assert not torch.equal(exact.tensor, fast.tensor), "draft mode did not change the decode"
    assert (exact.tensor - fast.tensor).abs().mean() < 0.05
    assert np.allclose(exact.mean, fast.mean, atol=1.5)
    p_exact, p_fast = (
        infer(resnet18, [d.tensor], FP32, 5, keep_probabilities=True)[0].probabilities for d in (exact, fast)
    )
    assert np.abs(p_exact - p_fast).max() <= MAX_PROBABILITY_SHIFT


@pytest.mark.parametrize("uint8_input", [False, True])  # the CPU and the CUDA host transforms
@pytest.mark.parametrize("fast", [False, True])
def test_host_transforms_let_the_decoder_reduce_large_jpegs_in_fast_mode(
    bench_photos, resnet18, uint8_input, fast
) -> None:
    plan = DevicePlan(device="cpu", uint8_input=uint8_input, pin_memory=False, compile=False, gpu_decode=False)
    decoder = plan.decoder(resnet18.transform, fast)
    assert decoder.transform.draft_size == (256 if fast else None)
    decode_jpeg = turbo.simplejpeg.decode_jpeg
    with patch.object(turbo.simplejpeg, "decode_jpeg", side_effect=decode_jpeg) as spy:
        decoded = decoder(bench_photos[7].read_bytes())  # the 4032 x 3024 phone photo
    assert (decoded.width, decoded.height) in ((4032, 3024), (3024, 4032))
    if fast:  # libjpeg-turbo at 1/4 (756 px short side >= 2.25 x 256), not Pillow's 1/8
        (call,) = spy.call_args_list
        assert sorted((call.kwargs["min_width"], call.kwargs["min_height"])) == [756, 1008]
    else:  # exact mode is Pillow's reference decode
        assert spy.call_count == 0


@pytest.mark.parametrize("index", [0, 9])  # an ImageNet-sized JPEG and a PNG: no draft decode
def test_small_images_differ_by_at_most_one_level_in_fast_mode(bench_photos, resnet18, reader, index) -> None:
    exact, fast = (_read(reader, bench_photos[index], resnet18.transform, f) for f in (False, True))
    assert (exact.width, exact.height, exact.mean, exact.std) == (fast.width, fast.height, fast.mean, fast.std)
    # One level of 255 after normalization is 1 / (255 * std) for each channel.
    one_level = torch.tensor([1 / (255 * s) for s in resnet18.transform.std]).view(3, 1, 1)
    assert ((exact.tensor - fast.tensor).abs() <= one_level * 1.001).all()
    assert (exact.tensor != fast.tensor).float().mean() < 0.5


def _noise(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(width * 7919 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# Landscape, portrait, square, thin strips, upscaled small images, phone-sized, exactly the crop.
SIZES = [(500, 375), (375, 500), (256, 256), (224, 224), (4032, 3024), (1000, 257), (3, 500), (100, 80), (29, 192)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_resize_crop_exact_is_torchvision_and_fast_is_within_one_level(resnet18, width, height) -> None:
    t = resnet18.transform
    image = _noise(width, height)
    reference = np.asarray(
        F.center_crop(F.resize(image, t.resize_size, interpolation=t.interpolation, antialias=True), t.crop_size)
    )
    exact = np.asarray(ResizeCrop(t, fast=False)(image))
    fast = np.asarray(ResizeCrop(t, fast=True)(image))
    assert np.array_equal(exact, reference)
    assert fast.shape == reference.shape == (224, 224, 3)
    assert np.abs(fast.astype(int) - reference).max() <= 1


def test_fast_resize_falls_back_to_exact_when_the_crop_would_pad(resnet18) -> None:
    class Padding:  # a resize smaller than its crop: center_crop pads, which a region cannot express
        resize_size, crop_size, interpolation = [200], [224], resnet18.transform.interpolation

    assert ResizeCrop(Padding, fast=True).crop_region(500, 375) is None
    image = _noise(500, 375)
    assert np.array_equal(
        np.asarray(ResizeCrop(Padding, fast=True)(image)), np.asarray(ResizeCrop(Padding, fast=False)(image))
    )


def test_draft_keeps_exif_orientation_and_file_size(resnet18) -> None:
    image = Image.new("RGB", (1600, 1000), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90: reads as 1000 x 1600
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    fast = plan_for("cpu").decoder(resnet18.transform, fast=True)(buffer.getvalue())
    exact = plan_for("cpu").decoder(resnet18.transform, fast=False)(buffer.getvalue())
    assert (fast.width, fast.height) == (exact.width, exact.height) == (1000, 1600)
    assert fast.tensor.shape == exact.tensor.shape == (3, 224, 224)


def test_decode_mode_setting_is_validated(monkeypatch) -> None:
    assert fast_decode("exact") is False
    assert fast_decode(" Fast") is True
    with pytest.raises(ValueError, match="fast or exact"):
        fast_decode("sloppy")
    # A worker refuses a bad mode when it builds its context, before any chunk runs.
    monkeypatch.setattr(settings, "DECODE_MODE", "sloppy")
    with pytest.raises(ValueError, match="IMAGEBATCH_DECODE_MODE must be fast or exact, not 'sloppy'"):
        WorkerContext.build(settings, device="cpu")
