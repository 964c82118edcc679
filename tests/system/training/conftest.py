"""Real stacks for custom models: an API and workers serving classify and train, on PostgreSQL + Redis (and
SQLite once), with short leases so a killed training worker's job is resumed within seconds; the digits."""

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imagebatch.worker.training.digits import DigitsFolders, write_digits
from tests.harness.services import clean_env, private_redis, scratch_database
from tests.harness.stack import Stack

REDIS_DB = 15  # this area's Redis database (the resume test has 5)
PG_DATABASE = "imagebatch_training_test"
# Tiny, fast runs: 200 digits at 32 px, ResNet-18 from scratch (chance is 0.1).
TRAINING = {
    "mode": "scratch",
    "epochs": 5,
    "image_size": 32,
    "batch_size": 16,
    "learning_rate": 0.002,
    "augment": False,
}


def stack_env(torch_home: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    """One torch thread per process (2 shared cores), short leases and sweeps: resume within seconds."""
    return clean_env(
        TORCH_HOME=str(torch_home),
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_WORKER_MODELS="resnet18",
        IMAGEBATCH_TORCH_THREADS="1",
        IMAGEBATCH_DECODE_THREADS="1",
        IMAGEBATCH_CHUNK_SIZE="16",
        IMAGEBATCH_TRAIN_LEASE="4",
        IMAGEBATCH_TRAIN_HEARTBEAT="1",
        IMAGEBATCH_SWEEP_INTERVAL="1",
        **extra,
    )


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsFolders:
    """20 digits per class to train on (train/), 20 others per class never trained on (test/)."""
    return write_digits(tmp_path_factory.mktemp("digits"), size=32, per_class=20)


def zip_folder(folder: Path, extra: dict[str, bytes] | None = None) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, path.relative_to(folder).as_posix())
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return data.getvalue()


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory, torch_home) -> Iterator[Stack]:
    """API + one worker consuming both queues (the default), on PostgreSQL and Redis."""
    data_dir = tmp_path_factory.mktemp("training_stack")
    with scratch_database(PG_DATABASE) as pg_url, private_redis(REDIS_DB) as redis_url:
        stack = Stack(env=stack_env(torch_home, data_dir, DATABASE_URL=pg_url, REDIS_URL=redis_url), log_dir=data_dir)
        try:
            stack.start_api()
            stack.start_worker(models="resnet18")
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def client(pg_stack: Stack, request) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pg_stack.url, timeout=60) as http:
        yield http
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(pg_stack.all_logs())


def wait_training(client: httpx.Client, job_id: str, timeout: float = 300, stack: Stack | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/training-jobs/{job_id}").json()
        if job["state"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    logs = stack.all_logs() if stack else ""
    raise TimeoutError(f"training job {job_id} still {job['state']} after {timeout}s\n{logs}")
