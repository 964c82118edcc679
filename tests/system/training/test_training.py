"""Custom models end to end with real processes on PostgreSQL + Redis: train, classify, evaluate, version."""

import csv
import io
import subprocess
import time

import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

from imagebatch.client import Client
from tests.harness.stack import BIN, wait_for_job
from tests.system.training.conftest import TRAINING, wait_training, zip_folder

pytestmark = pytest.mark.e2e

CLASSES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def trained(pg_stack, digits) -> dict:
    """digits:1, trained from scratch through the Python client, epochs reported as they end."""
    reported: list[dict] = []
    with Client(pg_stack.url, timeout=60) as client:
        job = client.train(digits.train, name="digits", horizontal_flip=False, **TRAINING)
        job.wait(poll=0.5, timeout=600, on_epoch=reported.append)
        return {"job": job.data, "reported": reported, "model": client.model("digits")}


def test_training_learns_the_digits_and_registers_a_model(trained, pg_stack):
    job, reported = trained["job"], trained["reported"]
    assert job["state"] == "completed", pg_stack.all_logs()
    epochs = job["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5] == [e["epoch"] for e in reported]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] / 2
    assert job["best"]["val_accuracy"] >= 0.6  # chance is 0.1
    assert job["model"] == {"name": "digits", "version": 1} and job["progress"] == 1.0
    assert job["dataset"]["counts"] == {c: {"train": 16, "val": 4} for c in CLASSES}
    record = job["record"]
    assert record["hyperparameters"]["epochs"] == 5 and len(record["dataset_sha256"]) == 64
    assert record["precision"]["resolved"] == "fp32"  # auto at 32 px on a CPU
    model = trained["model"]
    assert (model["ref"], model["classes"], model["weights_sha256"]) == ("digits:1", CLASSES, record["weights_sha256"])
    assert [e["epoch"] for e in model["history"]] == [1, 2, 3, 4, 5]
    assert model["evaluation"]["confusion_matrix"]["classes"] == CLASSES


def test_classifying_with_the_custom_model_speaks_its_classes(trained, client, digits):
    paths = sorted(digits.test.rglob("*.png"))[::20]  # one per digit
    files = [("files", (f"{p.parent.name}-{p.name}", p.read_bytes())) for p in paths]
    response = client.post("/v1/jobs", files=files, data={"model": "digits", "store_probabilities": "true"})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert (job["state"], job["model"], job["model_version"], job["base_model"]) == (
        "completed",
        "digits",
        1,
        "resnet18",
    )
    record = job["reproducibility"]
    assert record["weights_sha256"] == trained["model"]["weights_sha256"] and record["classes"] == CLASSES
    items = client.get(f"/v1/jobs/{job['id']}/results").json()["items"]
    assert all({entry["label"] for entry in item["top_k"]} <= set(CLASSES) for item in items)
    assert all(len(item["top_k"]) == 5 for item in items)
    rows = list(csv.reader(io.StringIO(client.get(f"/v1/jobs/{job['id']}/results.csv?probabilities=true").text)))
    assert rows[0][-10:] == [f"p_{c}" for c in CLASSES] and len(rows) == 11
    table = pq.read_table(io.BytesIO(client.get(f"/v1/jobs/{job['id']}/results.parquet?probabilities=true").content))
    assert table.schema.field("embedding").type.list_size == 512
    assert table.schema.field("probabilities").type.list_size == 10


def test_the_evaluation_equals_an_independent_computation_from_the_stored_predictions(trained, pg_stack, digits):
    with Client(pg_stack.url, timeout=60) as client:
        evaluation = client.evaluate(digits.test, model="digits:1").wait(timeout=300)
        items = list(client.iter_results(evaluation.id))
        wrong = list(client.iter_results(evaluation.id, correct="false"))
        latest = client.model("digits")["latest_evaluation"]
    assert evaluation.state == "completed" and evaluation.counts["succeeded"] == 200
    y_true = [item["true_label"] for item in items]
    y_pred = [item["top1_label"] for item in items]
    assert y_true == [path.split("/")[0] for path in (item["source"] for item in items)]
    found = evaluation.metrics
    assert found["top1_accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert found["confusion_matrix"] == {
        "classes": CLASSES,
        "rows": skm.confusion_matrix(y_true, y_pred, labels=CLASSES).tolist(),
    }
    top5 = sum(t in [e["label"] for e in item["top_k"][:5]] for t, item in zip(y_true, items, strict=True))
    assert found["top5_accuracy"] == pytest.approx(top5 / len(items))
    recall = skm.recall_score(y_true, y_pred, labels=CLASSES, average=None, zero_division=0)
    assert [row["recall"] for row in found["per_class"]] == pytest.approx(list(recall))
    assert [item["index"] for item in wrong] == [i["index"] for i in items if i["true_label"] != i["top1_label"]]
    assert latest["id"] == evaluation.id and latest["metrics"] == found


def test_training_again_makes_version_2_and_a_version_can_be_pinned(trained, pg_stack, client, digits, tmp_path):
    archive = tmp_path / "digits.zip"
    archive.write_bytes(zip_folder(digits.train, extra={"3/broken.png": b"\x89PNG\r\n\x1a\n not really"}))
    command = [str(BIN / "imagebatch"), "--url", pg_stack.url, "train", str(archive), "--name", "digits"]
    command += ["--mode", "scratch", "--epochs", "2", "--image-size", "32", "--batch-size", "16", "--no-augment"]
    done = subprocess.run([*command, "--wait"], env=pg_stack.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr + pg_stack.all_logs()
    job_id = done.stdout.strip().splitlines()[0]
    assert "registered model digits:2" in done.stderr and "val acc" in done.stderr
    job = client.get(f"/v1/training-jobs/{job_id}").json()
    skipped = {s["rel"]: s["category"] for s in job["dataset"]["skipped"]}
    assert list(skipped) == ["3/broken.png"] and skipped["3/broken.png"] in ("unreadable", "truncated")
    assert job["image_count"] == 201
    pinned = client.post("/v1/jobs", json={"uris": ["https://example.invalid/a.png"], "model": "digits:1"}).json()
    latest = client.post("/v1/jobs", json={"uris": ["https://example.invalid/a.png"], "model": "digits"}).json()
    assert (pinned["model_version"], latest["model_version"]) == (1, 2)
    listed = subprocess.run(
        [str(BIN / "imagebatch"), "--url", pg_stack.url, "models", "list"], capture_output=True, text=True, timeout=60
    )
    assert "digits:2 (latest)" in listed.stdout and "digits:1" in listed.stdout


def test_cancel_stops_a_training_run_and_registers_nothing(pg_stack, client, digits):
    archive = zip_folder(digits.train)
    options = {**{k: str(v).lower() for k, v in TRAINING.items()}, "epochs": "40", "name": "cancelled-run"}
    job = client.post("/v1/training-jobs", files={"archive": ("d.zip", archive)}, data=options).json()
    deadline = time.monotonic() + 300
    while not client.get(f"/v1/training-jobs/{job['id']}").json()["epochs"]:
        assert time.monotonic() < deadline, pg_stack.all_logs()
        time.sleep(0.5)
    assert client.post(f"/v1/training-jobs/{job['id']}/cancel").json()["state"] == "cancelling"
    final = wait_training(client, job["id"], timeout=120, stack=pg_stack)
    assert final["state"] == "cancelled" and final["model"] is None and len(final["epochs"]) < 40
    assert client.get("/v1/models/cancelled-run").status_code == 404
