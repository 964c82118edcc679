"""A training worker SIGKILLed mid-epoch: another worker resumes the job from its last shared checkpoint."""

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from imagebatch.db.models import TrainingJob
from tests.harness.services import private_redis, scratch_database
from tests.harness.stack import Stack
from tests.system.training.conftest import TRAINING, stack_env, wait_training, zip_folder

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

REDIS_DB = 5  # its own Redis database
PG_DATABASE = "imagebatch_resume_test"


@pytest.fixture(scope="module")
def resume_stack(tmp_path_factory, torch_home) -> Iterator[tuple[Stack, str]]:
    """API and a training-only worker (classification runs elsewhere); PostgreSQL and Redis of its own."""
    data_dir = tmp_path_factory.mktemp("resume_stack")
    with scratch_database(PG_DATABASE) as pg_url, private_redis(REDIS_DB) as redis_url:
        stack = Stack(env=stack_env(torch_home, data_dir, DATABASE_URL=pg_url, REDIS_URL=redis_url), log_dir=data_dir)
        try:
            stack.start_api()
            stack.start_worker(models="resnet18", queues="train")
            yield stack, pg_url
        finally:
            stack.stop()


def _checkpointed(engine, job_id: str) -> TrainingJob | None:
    """The job once its first checkpoint is in shared storage (and before its last epoch)."""
    with Session(engine) as session:
        job = session.scalar(select(TrainingJob).where(TrainingJob.id == job_id))
        return job if job.checkpoint_key and 1 <= len(job.epochs) < TRAINING["epochs"] else None


def test_a_killed_training_worker_is_replaced_and_the_job_finishes_with_every_epoch(resume_stack, digits):
    stack, pg_url = resume_stack
    engine = create_engine(pg_url)
    options = {**{k: str(v).lower() for k, v in TRAINING.items()}, "name": "survivor", "horizontal_flip": "false"}
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        archive = {"archive": ("d.zip", zip_folder(digits.train))}
        submitted = client.post("/v1/training-jobs", files=archive, data=options)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.monotonic() + 300
        while (seen := _checkpointed(engine, job_id)) is None:
            assert time.monotonic() < deadline and not stack.dead(), stack.all_logs()
            time.sleep(0.2)
        stack.workers[0].kill()  # SIGKILL in the next epoch: no warm shutdown, no cleanup
        stack.workers[0].wait()
        killed_after = len(seen.epochs)
        assert client.get(f"/v1/training-jobs/{job_id}").json()["state"] == "running"
        stack.start_worker(models="resnet18", queues="train")
        final = wait_training(client, job_id, timeout=400, stack=stack)
    engine.dispose()
    assert final["state"] == "completed", stack.all_logs()
    assert [e["epoch"] for e in final["epochs"]] == [1, 2, 3, 4, 5]
    assert final["attempts"] == 2 and final["model"] == {"name": "survivor", "version": 1}
    resumed_after = final["record"]["resumed_after_epochs"]
    assert len(resumed_after) == 1 and 1 <= resumed_after[0] <= killed_after
    assert "resuming from" in stack.logs("worker1")
