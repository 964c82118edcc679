"""int8 models agree with fp32 on held-out photos, keep the embedding, and survive save/load.

Thresholds, for seeded RANDOM weights: an untrained ResNet spreads its softmax thinly, and half of
the held-out photos have a top-1/top-2 probability gap under 0.05 (down to 0.001): near-ties that any
rounding may reorder (bf16 autocast already flips 1 in 30). So top-1 must hold on every photo with a
clear decision (gap >= 0.05: the flips measured for all engines had gaps <= 0.023, so that is 2x
headroom) and on >= 80% of all photos (measured 94% here, 81-89% on the benchmark's photos); no
probability moves by more than 0.2 (max over 1000 classes: measured 0.06-0.10 here, up to 0.17 on
the benchmark's 64 photos) and embeddings keep their direction (cosine >= 0.99, measured >= 0.998).
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from imagebatch.worker.devices import cpu_has_vnni
from imagebatch.worker.modeltools.calibration import CalibrationSet, calibration_set
from imagebatch.worker.modeltools.int8 import DEFAULT_ENGINE, engine_class, quantize_model
from imagebatch.worker.modeltools.int8_engine import Int8Model, Int8Unsupported
from imagebatch.worker.modeltools.int8_runtimes import OpenVinoModel, OrtModel
from tests.harness.photosets import calibration_photos, held_out_photos

ENGINES = ("openvino", "onnxruntime", "pt2e")
CLEAR_GAP = 0.05
MIN_AGREEMENT = 0.8
MAX_DP = 0.2
MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def calibration(resnet18, tmp_path_factory: pytest.TempPathFactory) -> CalibrationSet:
    return calibration_set(calibration_photos(tmp_path_factory.mktemp("calibration")), resnet18.transform)


@pytest.fixture(scope="module")
def held_out(resnet18, tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    paths = held_out_photos(tmp_path_factory.mktemp("held_out"))
    return calibration_set(paths, resnet18.transform, batch_size=len(paths)).batches[0]


@pytest.fixture(scope="module")
def fp32(resnet18, held_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        logits, embedding = resnet18.net(held_out)
    return logits.softmax(-1), embedding


@pytest.fixture(scope="module", params=ENGINES)
def quantized(request: pytest.FixtureRequest, resnet18, calibration: CalibrationSet) -> Int8Model:
    if engine_class(request.param).refusal(cpu_has_vnni()):
        pytest.skip(f"{request.param} refuses a CPU without VNNI (test_pt2e_refuses_a_cpu_without_vnni)")
    return quantize_model(resnet18.net, calibration.batches, engine=request.param)


def assert_agrees(quantized: Int8Model, held_out: torch.Tensor, fp32) -> None:
    ref_probs, ref_embedding = fp32
    logits, embedding = quantized(held_out)
    probs = logits.softmax(-1)
    assert logits.shape == ref_probs.shape and embedding.shape == ref_embedding.shape
    same = probs.argmax(-1) == ref_probs.argmax(-1)
    best_two = ref_probs.topk(2).values
    clear = best_two[:, 0] - best_two[:, 1] >= CLEAR_GAP
    assert clear.sum() >= 10, "too few clearly decided photos for the check to mean anything"
    assert bool(same[clear].all()), f"{quantized.engine}: top-1 changed on a clearly decided photo"
    assert float(same.float().mean()) >= MIN_AGREEMENT
    assert float((probs - ref_probs).abs().max()) <= MAX_DP
    cosine = torch.nn.functional.cosine_similarity(embedding, ref_embedding)
    assert float(cosine.min()) >= MIN_COSINE


def test_int8_agrees_with_fp32(quantized: Int8Model, held_out: torch.Tensor, fp32) -> None:
    assert_agrees(quantized, held_out, fp32)


def int8_weight_bound(model: OrtModel) -> int:
    """The largest |value| among the quantized model's int8 weights."""
    graph = onnx.load_from_string(model.model_bytes).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 20, "ResNet-18 has 20 convolutions and a classifier"
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)


@pytest.mark.parametrize("quantized", ["onnxruntime"], indirect=True)
def test_onnxruntime_uses_full_range_weights_only_with_vnni(quantized: Int8Model) -> None:
    """Without VNNI, x86's uint8 x int8 multiply-add saturates its 16-bit pair sums: 7-bit weights avoid it."""
    assert isinstance(quantized, OrtModel)
    assert int8_weight_bound(quantized) == (127 if cpu_has_vnni() else 64)


def test_onnxruntime_recipe_for_a_cpu_without_vnni_agrees_with_fp32(
    resnet18, calibration: CalibrationSet, held_out: torch.Tensor, fp32
) -> None:
    """The 7-bit recipe, made on whatever CPU runs the test: it must lose no more than the checks allow."""
    if not cpu_has_vnni():
        pytest.skip("this CPU lacks VNNI: test_int8_agrees_with_fp32[onnxruntime] already runs this recipe")
    seven_bit = quantize_model(resnet18.net, calibration.batches, engine="onnxruntime", vnni=False)
    assert isinstance(seven_bit, OrtModel) and int8_weight_bound(seven_bit) == 64
    assert_agrees(seven_bit, held_out, fp32)


def test_pt2e_refuses_a_cpu_without_vnni(resnet18, calibration: CalibrationSet) -> None:
    refused = "pt2e int8 engine needs a CPU with VNNI.*IMAGEBATCH_INT8_ENGINE=openvino"
    with pytest.raises(Int8Unsupported, match=refused):
        quantize_model(resnet18.net, calibration.batches, engine="pt2e", vnni=False)


def test_any_batch_size_gives_the_same_rows(quantized: Int8Model, held_out: torch.Tensor) -> None:
    logits, embedding = quantized(held_out)
    part_logits, part_embedding = quantized(held_out[3:8])
    torch.testing.assert_close(part_logits, logits[3:8], rtol=0, atol=1e-3)
    torch.testing.assert_close(part_embedding, embedding[3:8], rtol=0, atol=1e-3)


def test_saved_model_loads_and_gives_the_same_outputs(
    quantized: Int8Model, held_out: torch.Tensor, tmp_path: Path
) -> None:
    quantized.save(tmp_path)
    assert (tmp_path / quantized.artefact).is_file()
    loaded = engine_class(quantized.engine).load(tmp_path)
    for expected, got in zip(quantized(held_out[:4]), loaded(held_out[:4]), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_unknown_engine_and_empty_calibration_are_refused(resnet18, calibration: CalibrationSet) -> None:
    with pytest.raises(ValueError, match="unknown int8 engine 'tensorrt': choose one of"):
        quantize_model(resnet18.net, calibration.batches, engine="tensorrt")
    with pytest.raises(ValueError, match="at least one batch"):
        quantize_model(resnet18.net, [], engine=DEFAULT_ENGINE)


def test_a_model_with_two_streams_runs_two_calls_at_once_with_the_same_outputs(
    quantized: Int8Model, held_out: torch.Tensor
) -> None:
    """A worker with two forward slots calls its int8 model from two threads at once: each call gets
    its own rows, as a single-stream model gives them."""
    expected = quantized(held_out[:6])
    two = quantized.with_streams(2)
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(two, [held_out[:6]] * 4))
    for logits, embedding in outputs:
        torch.testing.assert_close(logits, expected[0], rtol=0, atol=1e-4)
        torch.testing.assert_close(embedding, expected[1], rtol=0, atol=1e-4)


@pytest.mark.parametrize("quantized", ["openvino"], indirect=True)
def test_openvino_gives_each_forward_slot_a_cpu_stream(quantized: Int8Model) -> None:
    """One OpenVINO CPU stream runs one request at a time, whichever thread sends it: a worker's
    forward slots would take turns. with_streams(n) compiles n streams of threads() threads each."""
    model = quantized
    assert isinstance(model, OpenVinoModel)
    assert model.compiled.get_property("NUM_STREAMS") == 1
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker with two slots on two cores
    try:
        two = model.with_streams(2)
    finally:
        torch.set_num_threads(before)
    assert two.compiled.get_property("NUM_STREAMS") == 2
    assert two.compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert two.with_streams(2) is two and two.model is model.model
