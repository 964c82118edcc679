"""int8 and bf16 against fp32 on real labelled images: a ResNet-18 trained on the digits, evaluated on held-out ones."""

import json

import pytest

from imagebatch.client import Client
from imagebatch.worker.training.digits import write_digits

pytestmark = pytest.mark.e2e

# The whole digits set at 32 px: 1,437 to train on, the fixed 360 never trained on for evaluation.
FULL = {**{"mode": "scratch", "image_size": 32, "learning_rate": 0.002, "augment": False}, "epochs": 5}
MAX_GAP = 0.005  # top-1 accuracy within 0.5 points of fp32: at most one of the 360 images


@pytest.fixture(scope="module")
def accuracies(pg_stack, tmp_path_factory) -> dict:
    digits = write_digits(tmp_path_factory.mktemp("digits-full"), size=32)
    found: dict = {}
    with Client(pg_stack.url, timeout=60) as client:
        job = client.train(digits.train, name="digits-int8", batch_size=32, horizontal_flip=False, **FULL)
        job.wait(poll=1, timeout=900)
        assert job.state == "completed", pg_stack.all_logs()
        for precision in ("fp32", "bf16", "int8"):
            evaluation = client.evaluate(digits.test, model="digits-int8", precision=precision).wait(timeout=600)
            assert evaluation.state == "completed", pg_stack.all_logs()
            found[precision] = evaluation
    # The figures README quotes ("int8 inference"), printed for the record of each run.
    print(json.dumps({p: e.metrics["top1_accuracy"] for p, e in found.items()}))
    return found


def test_int8_and_bf16_top1_within_half_a_point_of_fp32(accuracies) -> None:
    top1 = {precision: evaluation.metrics["top1_accuracy"] for precision, evaluation in accuracies.items()}
    assert accuracies["fp32"].metrics["count"] == 360
    assert top1["fp32"] >= 0.9, top1  # a trained model, or the comparison says little
    assert abs(top1["int8"] - top1["fp32"]) <= MAX_GAP, top1
    assert abs(top1["bf16"] - top1["fp32"]) <= MAX_GAP, top1


def test_int8_was_calibrated_on_the_models_own_training_sample(accuracies) -> None:
    record = accuracies["int8"].data["reproducibility"]
    assert record["precision"] == "int8" and record["int8_engine"] == "openvino"
    assert record["calibration_set"].startswith("training sample of digits-int8:1 (64 images")
    assert len(record["calibration_sha256"]) == 64
    assert "int8_engine" not in accuracies["fp32"].data["reproducibility"]
