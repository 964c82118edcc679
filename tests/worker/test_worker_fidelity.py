"""fp32 results equal torchvision's reference pipeline, image by image and batched."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from imagebatch.worker.devices import Precision
from imagebatch.worker.gpu import plan_for
from imagebatch.worker.inference import infer
from imagebatch.worker.preprocess import DecodedImage

FP32 = Precision("fp32", "fp32", "cpu")


def _reference_inputs(paths: dict[str, Path], transform) -> torch.Tensor:
    """torchvision's documented preprocessing, done here without any worker code."""
    tensors = []
    for path in paths.values():
        with Image.open(path) as im:
            tensors.append(transform(ImageOps.exif_transpose(im).convert("RGB")))
    return torch.stack(tensors)


@pytest.fixture(scope="module")
def reference_outputs(sample_images, reference_resnet18, resnet18, reference):
    """Reference probabilities and avgpool features, one image at a time, plain NCHW fp32."""
    inputs = _reference_inputs(sample_images, resnet18.weights.transforms())
    rows = [reference(reference_resnet18, inputs[i : i + 1]) for i in range(len(inputs))]
    return torch.cat([p for p, _ in rows]), torch.cat([f for _, f in rows])


@pytest.fixture(scope="module")
def decoded(sample_images, resnet18, reader) -> list[DecodedImage]:
    """Read and decoded as the worker does on a CPU in exact mode."""
    decode = plan_for("cpu").decoder(resnet18.transform, fast=False)
    outcomes = [reader.read_image(f"file:{path}", decode) for path in sample_images.values()]
    assert all(isinstance(o, DecodedImage) for o in outcomes), outcomes
    return outcomes


def test_one_at_a_time_matches_torchvision_reference(decoded, resnet18, reference_outputs) -> None:
    ref_probs, ref_features = reference_outputs
    for row, image in enumerate(decoded):
        (result,) = infer(resnet18, [image.tensor], FP32, top_k=5, keep_probabilities=True)
        assert result.topk[0]["index"] == int(ref_probs[row].argmax())
        assert result.topk[0]["label"] == resnet18.weights.meta["categories"][int(ref_probs[row].argmax())]
        assert np.abs(result.probabilities - ref_probs[row].numpy()).max() <= 1e-4
        np.testing.assert_allclose(result.embedding, ref_features[row].numpy(), rtol=1e-4, atol=1e-4)
        assert result.confidence == pytest.approx(float(ref_probs[row].max()), abs=1e-4)


def test_batched_equals_one_at_a_time(decoded, resnet18) -> None:
    batched = infer(resnet18, [d.tensor for d in decoded], FP32, top_k=5, keep_probabilities=True)
    for image, together in zip(decoded, batched, strict=True):
        (alone,) = infer(resnet18, [image.tensor], FP32, top_k=5, keep_probabilities=True)
        assert [t["index"] for t in together.topk] == [t["index"] for t in alone.topk]
        assert np.abs(together.probabilities - alone.probabilities).max() <= 1e-5
        np.testing.assert_allclose(together.embedding, alone.embedding, rtol=1e-5, atol=1e-5)
        assert together.entropy == pytest.approx(alone.entropy, abs=1e-4)


def test_random_weights_give_image_dependent_confident_predictions(decoded, resnet18, reference_outputs) -> None:
    """The calibrated random checkpoint keeps top-1 comparisons meaningful (see random_weights)."""
    ref_probs, _ = reference_outputs
    assert len(set(ref_probs.argmax(dim=1).tolist())) >= 3  # not one class for every image
    assert float(ref_probs.max(dim=1).values.max()) > 10 / 1000  # far from uniform


def test_bf16_stays_close_to_fp32(decoded, resnet18) -> None:
    tensors = [d.tensor for d in decoded]
    exact = infer(resnet18, tensors, FP32, top_k=5, keep_probabilities=True)
    fast = infer(resnet18, tensors, Precision("bf16", "bf16", "cpu"), top_k=5, keep_probabilities=True)
    for a, b in zip(exact, fast, strict=True):
        assert b.embedding.dtype == np.float32 and b.probabilities.dtype == np.float32
        assert np.abs(a.probabilities - b.probabilities).max() < 0.05
        assert b.probabilities.sum() == pytest.approx(1.0, abs=1e-4)


def test_decoded_sizes_follow_exif_orientation(decoded, sample_images) -> None:
    by_name = dict(zip(sample_images, decoded, strict=True))
    assert (by_name["exif_rotated_jpeg"].width, by_name["exif_rotated_jpeg"].height) == (200, 320)
    assert by_name["gray_png"].mode == "L" and by_name["rgba_png"].mode == "RGBA"
    assert by_name["palette_png"].mode == "P"
