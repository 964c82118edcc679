"""The worker as a real process: refuses to start without weights, consumes chunk tasks by name."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from imagebatch.db.models import Image as ImageRow
from imagebatch.db.models import Job

REPO = Path(__file__).resolve().parents[2]
JOB_ID = "job0000worker0000process000000b"


def test_missing_weights_exit_fast_naming_file_and_directory(tmp_path: Path, make_env) -> None:
    empty_home = tmp_path / "empty_torch_home"
    env = make_env(tmp_path, empty_home, f"sqlite:///{tmp_path / 'db.sqlite'}")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--models", "resnet18"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    last_line = done.stderr.strip().splitlines()[-1]
    assert "resnet18-f37072fd.pth" in last_line
    assert str(empty_home / "hub" / "checkpoints") in last_line
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in last_line
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("broker", ["redis", "sqlite"])
def test_burst_worker_consumes_tasks_sent_by_name(
    broker: str, tmp_path: Path, torch_home: Path, make_env, write_samples, run_driver, request
) -> None:
    samples = write_samples(tmp_path / "samples")
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    extra = {"IMAGEBATCH_REDIS_URL": request.getfixturevalue("redis_url")} if broker == "redis" else {}
    env = make_env(tmp_path, torch_home, url, IMAGEBATCH_WORKER_MODELS="resnet18", **extra)
    images = [[name, f"file:{path}"] for name, path in samples.items()] + [["gone.jpg", f"file:{tmp_path}/gone.jpg"]]
    run_driver(env, job_id=JOB_ID, images=images, chunk_size=3, action="enqueue")

    done = subprocess.run(
        [sys.executable, "-m", "worker", "--burst", "--loglevel", "INFO"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "chunk [6, 7)" in done.stderr  # the runner's timing line for the last chunk

    engine = create_engine(url)
    with Session(engine) as session:
        job = session.get(Job, JOB_ID)
        query = select(ImageRow.status).where(ImageRow.job_id == JOB_ID).order_by(ImageRow.idx)
        statuses = list(session.scalars(query))
    engine.dispose()
    assert job.state == "completed"
    assert statuses == ["ok"] * 6 + ["error"]
    assert job.reproducibility["model"] == "resnet18"


def test_chunk_that_keeps_failing_is_retried_then_recorded_as_internal_errors(
    tmp_path: Path, torch_home: Path, make_env, write_samples, run_driver, redis_url: str
) -> None:
    """A database fault that outlives the retries: the task gives up and the job still ends."""
    samples = write_samples(tmp_path / "samples")
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    env = make_env(tmp_path, torch_home, url, IMAGEBATCH_WORKER_MODELS="resnet18", IMAGEBATCH_REDIS_URL=redis_url)
    images = [["a.jpg", f"file:{samples['rgb_jpeg']}"], ["b.png", f"file:{samples['gray_png']}"]]
    run_driver(env, job_id=JOB_ID, images=images, chunk_size=2, action="enqueue")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE label_sets")  # every write of the chunk now fails

    done = subprocess.run(
        [sys.executable, "-m", "worker", "--burst"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("retry: Retry in") == 4

    with Session(engine) as session:
        job = session.get(Job, JOB_ID)
        rows = list(session.scalars(select(ImageRow).where(ImageRow.job_id == JOB_ID)))
    engine.dispose()
    assert job.state == "completed"
    assert [(r.status, r.error_category) for r in rows] == [("error", "internal")] * 2
    assert "failed after 4 retries" in rows[0].error_message and "label_sets" in rows[0].error_message
