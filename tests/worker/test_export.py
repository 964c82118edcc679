"""ONNX and TorchScript exports give the eager model's outputs, and carry the model card."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from imagebatch.worker.modeltools.calibration import calibration_set
from imagebatch.worker.modeltools.export import (
    ONNX_OPSET,
    OUTPUT_NAMES,
    card_for,
    export_onnx,
    export_torchscript,
    load_torchscript,
    read_onnx_card,
)
from tests.harness.photosets import held_out_photos

MAX_DP = 1e-4


@pytest.fixture(scope="module")
def photos(resnet18, tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """Eight held-out photos through the model's transforms, in the default (NCHW) memory format."""
    paths = held_out_photos(tmp_path_factory.mktemp("export_photos"))[:8]
    return calibration_set(paths, resnet18.transform, batch_size=8).batches[0].contiguous()


@pytest.fixture(scope="module")
def eager(resnet18, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        return resnet18.net(photos.contiguous(memory_format=torch.channels_last))


@pytest.fixture(scope="module")
def onnx_file(resnet18, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(resnet18.net, tmp_path_factory.mktemp("onnx") / "resnet18.onnx", card_for(resnet18))


def assert_same_predictions(logits: torch.Tensor, reference: torch.Tensor) -> None:
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))
    assert float((logits.softmax(-1) - reference.softmax(-1)).abs().max()) <= MAX_DP


def test_onnx_runs_in_onnxruntime_like_the_eager_model(onnx_file: Path, photos, eager) -> None:
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    for rows in (slice(0, 8), slice(0, 3), slice(5, 6)):  # the batch axis is dynamic
        logits, embedding = session.run(None, {"input": photos[rows].numpy()})
        assert_same_predictions(torch.from_numpy(logits), eager[0][rows])
        np.testing.assert_allclose(embedding, eager[1][rows].numpy(), rtol=1e-4, atol=1e-4)


def test_onnx_metadata_names_model_classes_transforms_and_weights(onnx_file: Path, resnet18) -> None:
    model = onnx.load(str(onnx_file))
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {ONNX_OPSET}
    props = {p.key: p.value for p in model.metadata_props}
    assert props["imagebatch.model"] == "resnet18"
    assert json.loads(props["imagebatch.classes"]) == resnet18.labels
    assert json.loads(props["imagebatch.transforms"])["resize"] == [256]
    assert props["imagebatch.weights_sha256"] == resnet18.weights_sha256
    assert read_onnx_card(onnx_file) == card_for(resnet18)


def test_torchscript_loads_in_plain_torch_like_the_eager_model(resnet18, tmp_path: Path, photos, eager) -> None:
    path = export_torchscript(resnet18.net, tmp_path / "resnet18.pt", card_for(resnet18))
    module, card = load_torchscript(path)
    assert card == card_for(resnet18)
    with torch.inference_mode():
        logits, embedding = module(photos)
        assert_same_predictions(logits, eager[0])
        torch.testing.assert_close(embedding, eager[1], rtol=1e-4, atol=1e-4)
        assert module(photos[:3])[0].shape == (3, len(resnet18.labels))
