"""A training archive of train/ and val/ folders: the worker validates on exactly the given val/ images."""

import io
import zipfile
from collections import Counter

import pytest

from tests.system.training.conftest import TRAINING, wait_training

pytestmark = pytest.mark.e2e


def test_a_given_validation_folder_is_what_the_worker_validates_on(pg_stack, client, digits):
    train = [p for p in sorted(digits.train.rglob("*.png")) if int(p.stem) % 2 == 0]  # ~10 per digit
    val = sorted(digits.test.rglob("*.png"))[::4]  # 5 per digit, never trained on
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for folder, paths in (("train", train), ("validation", val)):
            for path in paths:
                archive.write(path, f"digits/{folder}/{path.parent.name}/{path.name}")
    options = {**{k: str(v).lower() for k, v in TRAINING.items()}, "epochs": "1", "name": "given-split"}
    response = client.post("/v1/training-jobs", files={"archive": ("d.zip", data.getvalue())}, data=options)
    assert response.status_code == 202, response.text
    job = wait_training(client, response.json()["id"], stack=pg_stack)
    assert job["state"] == "completed", pg_stack.all_logs()
    expected_val, expected_train = Counter(p.parent.name for p in val), Counter(p.parent.name for p in train)
    counts = job["dataset"]["counts"]
    assert {c: n["val"] for c, n in counts.items()} == dict(expected_val)
    assert {c: n["train"] for c, n in counts.items()} == dict(expected_train)
    split = job["record"]["split"]
    assert (split["method"], split["val_fraction"]) == ("given", None)
    assert job["image_count"] == len(train) + len(val)
