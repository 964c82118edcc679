"""The worker's int8 models: quantized once per model on the project's sample photos, recorded, then reused."""

from pathlib import Path

import pytest
import torch

from imagebatch.worker.devices import Precision
from imagebatch.worker.inference import infer
from imagebatch.worker.int8_models import Int8Models
from imagebatch.worker.models import ModelUnavailable
from imagebatch.worker.modeltools.calibration import calibration_set
from imagebatch.worker.samples import write_sample_photos
from tests.harness.photosets import held_out_photos

FP32 = Precision("fp32", "fp32", "cpu")
INT8 = Precision("int8", "int8", "cpu")
CLEAR_GAP = 0.05  # as tests/worker/test_int8.py: random weights leave many near-ties


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory: pytest.TempPathFactory) -> Int8Models:
    return Int8Models("openvino", 32, cache_root=tmp_path_factory.mktemp("int8-cache"))


def test_built_in_model_is_calibrated_on_the_sample_photos_and_recorded(int8_models, resnet18, tmp_path) -> None:
    served = int8_models.get(resnet18)
    assert int8_models.get(resnet18) is served  # once per process
    # The record's hash is that of the first 32 sample photos through the model's own transforms.
    expected = calibration_set(write_sample_photos(tmp_path, 32), resnet18.transform)
    assert served.record() == {
        "int8_engine": "openvino",
        "int8_recipe": {},
        "calibration_set": "imagebatch sample photos (worker/samples.py, first 32)",
        "calibration_sha256": expected.sha256,
        "calibration_images": 32,
    }


def test_int8_results_follow_fp32_on_clear_decisions(int8_models, resnet18, tmp_path: Path) -> None:
    held_out = list(calibration_set(held_out_photos(tmp_path), resnet18.transform, batch_size=1000).batches[0])
    served = int8_models.get(resnet18)
    quantized = infer(resnet18, held_out, INT8, top_k=5, keep_probabilities=True, net=served.model)
    exact = infer(resnet18, held_out, FP32, top_k=5, keep_probabilities=True)
    for q, f in zip(quantized, exact, strict=True):
        if f.margin >= CLEAR_GAP:
            assert q.topk[0]["index"] == f.topk[0]["index"]
        assert abs(q.probabilities - f.probabilities).max() <= 0.2
        cosine = torch.nn.functional.cosine_similarity(torch.tensor(q.embedding), torch.tensor(f.embedding), dim=0)
        assert float(cosine) >= 0.99


def test_a_second_process_loads_the_cached_model(int8_models, resnet18) -> None:
    again = Int8Models("openvino", 32, cache_root=int8_models.cache_root)
    assert again.get(resnet18).calibration_sha256 == int8_models.get(resnet18).calibration_sha256
    assert len(list((int8_models.cache_root / "resnet18").glob("*-openvino-*/meta.json"))) == 1


def test_a_worker_with_two_forward_slots_gets_a_model_with_two_streams(int8_models, resnet18) -> None:
    two_slots = Int8Models("openvino", 32, cache_root=int8_models.cache_root, streams=2)
    served = two_slots.get(resnet18)
    assert served.model.streams == 2 and int8_models.get(resnet18).model.streams == 1
    assert served.calibration_sha256 == int8_models.get(resnet18).calibration_sha256  # the same cached model


def test_custom_model_without_a_calibration_sample_cannot_run_int8(int8_models, resnet18) -> None:
    from dataclasses import replace

    old = replace(resnet18, custom="digits:1", calibration_keys=())
    with pytest.raises(ModelUnavailable, match="no int8 calibration sample.*train it again"):
        int8_models.get(old)


def test_an_unknown_engine_stops_the_worker_at_start_up() -> None:
    with pytest.raises(ValueError, match="unknown int8 engine 'tflite'"):
        Int8Models("tflite", 32)


def test_an_engine_that_refuses_the_cpu_fails_int8_jobs_saying_why(resnet18, tmp_path: Path) -> None:
    without_vnni = Int8Models("pt2e", 32, cache_root=tmp_path, vnni=False)
    with pytest.raises(ModelUnavailable, match="cannot run int8: the pt2e int8 engine needs a CPU with VNNI"):
        without_vnni.get(resnet18)
    assert not any(tmp_path.iterdir())  # nothing was quantized
