"""Custom models on the embedded defaults (SQLite database, SQLite broker): train, then classify with the model."""

from collections.abc import Iterator

import httpx
import pytest

from tests.harness.stack import Stack, wait_for_job
from tests.system.training.conftest import stack_env, wait_training, zip_folder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory, torch_home) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("training_embedded")
    stack = Stack(env=stack_env(torch_home, data_dir), log_dir=data_dir / "logs")
    try:
        stack.start_api()
        stack.start_worker(models="resnet18")  # both queues
        yield stack
    finally:
        stack.stop()


def test_train_then_classify_on_the_embedded_defaults(embedded_stack, digits):
    four = {d: sorted((digits.train / d).glob("*.png"))[:10] for d in "0123"}
    archive = zip_folder(digits.train)  # every class; the model below is trained on all ten
    options = {"name": "embedded", "mode": "scratch", "epochs": "2", "image_size": "32", "batch_size": "16"}
    with httpx.Client(base_url=embedded_stack.url, timeout=60) as client:
        job = client.post("/v1/training-jobs", files={"archive": ("d.zip", archive)}, data=options)
        assert job.status_code == 202, job.text
        final = wait_training(client, job.json()["id"], stack=embedded_stack)
        assert final["state"] == "completed", embedded_stack.all_logs()
        assert [e["epoch"] for e in final["epochs"]] == [1, 2] and final["model"]["version"] == 1
        files = [("files", (f"{d}-{p.name}", p.read_bytes())) for d, paths in four.items() for p in paths[:1]]
        response = client.post("/v1/jobs", files=files, data={"model": "embedded"})
        classified = wait_for_job(client, response.json()["id"])
        assert classified["state"] == "completed" and classified["counts"]["succeeded"] == 4
        items = client.get(f"/v1/jobs/{classified['id']}/results").json()["items"]
        assert all(item["top1_label"] in [str(d) for d in range(10)] for item in items)
