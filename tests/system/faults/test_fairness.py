"""Fair scheduling with a real worker on Redis: a small job submitted late does not wait for a big one."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imagebatch.core.chunks import CHUNKS_PER_PRIORITY
from tests.harness.faults import Setup, status_counts, submit, wait_until
from tests.harness.images import photo
from tests.harness.services import scratch_database
from tests.harness.stack import Stack, wait_for_job
from tests.system.faults.conftest import PG_DATABASE

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

BIG, SMALL = 300, 8


def _small_photos(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"p{seed + i:04d}.jpg"
        photo(96, 72, seed=seed + i).save(path, quality=85)
        paths.append(path)
    return paths


@pytest.fixture
def stack(fault_setup: Setup, redis_url: str) -> Iterator[Stack]:
    with scratch_database(PG_DATABASE) as pg:
        env = fault_setup.env(pg, redis_url, "fairness")
        stack = Stack(env=env, log_dir=fault_setup.work_dir / "fairness" / "logs")
        try:
            stack.start_api()
            stack.start_worker("resnet18")
            yield stack
        finally:
            stack.stop()


def _done(database_url: str, job_id: str) -> int:
    counts = status_counts(database_url, job_id)
    return counts.get("ok", 0) + counts.get("error", 0)


def test_a_small_job_submitted_while_a_big_one_runs_finishes_before_the_big_one_is_half_done(stack, fault_setup):
    database_url = stack.env["DATABASE_URL"]
    folder = fault_setup.image_root / "fairness"
    big_paths = _small_photos(folder, BIG, seed=1000)
    small_paths = _small_photos(folder, SMALL, seed=5000)
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        big = submit(client, big_paths)["id"]
        wait_until(lambda: _done(database_url, big) >= 8, timeout=120)
        done_at_submit = _done(database_url, big)
        small = submit(client, small_paths)["id"]
        t0 = time.monotonic()
        final_small = wait_for_job(client, small, timeout=120)
        small_seconds = time.monotonic() - t0
        done_when_small_finished = _done(database_url, big)
        assert final_small["state"] == "completed" and final_small["counts"]["succeeded"] == SMALL
        # FIFO would finish all 300 first; here the small job's 2 chunks run within a few chunks.
        assert done_when_small_finished < BIG / 2, (done_at_submit, done_when_small_finished)
        # Ahead of the small job's chunks: the big job's remaining first-priority chunks (FIFO within a
        # priority) and the few a worker already holds (its prefetch slot and the forward in flight).
        big_chunks_between = (done_when_small_finished - done_at_submit) / 4
        assert big_chunks_between <= CHUNKS_PER_PRIORITY + 4, (done_at_submit, done_when_small_finished, small_seconds)
        final_big = wait_for_job(client, big, timeout=300)
        assert final_big["state"] == "completed" and final_big["counts"]["succeeded"] == BIG
