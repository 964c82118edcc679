"""Fault scenarios with real processes: each injects one fault mid-job and counts what was stored.

Here the harness and the worker faults; tests.harness.outages has the Redis and PostgreSQL
outages. Used by tests/faults and by scripts/faults.py, which loops them and publishes the figures.
"""

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from tests.harness.images import write_photos
from tests.harness.services import clean_env
from tests.harness.stack import Stack


@dataclass
class Outcome:
    """What one scenario run did and what ended up in the database."""

    scenario: str
    faults: int
    expected: int
    stored: int = 0
    duplicates: int = 0
    succeeded: int = 0
    failed: int = 0
    state: str = ""
    api_counts_match: bool = False
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.state == "completed"
            and self.stored == self.expected
            and self.duplicates == 0
            and self.api_counts_match
        )

    def as_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


@dataclass
class Setup:
    """Inputs shared by every scenario: random weights, a folder of photos, where to log."""

    torch_home: Path
    image_root: Path
    work_dir: Path

    def photos(self, count: int) -> list[Path]:
        found = sorted(self.image_root.glob("photo_*"))
        if len(found) < count:
            found = write_photos(self.image_root, count)
        return found[:count]

    def env(self, database_url: str, redis_url: str, name: str, **overrides: str) -> dict[str, str]:
        settings = {
            "TORCH_HOME": str(self.torch_home),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "IMAGEBATCH_DATA_DIR": str(self.work_dir / name),
            "IMAGEBATCH_ALLOWED_ROOTS": str(self.image_root),
            "IMAGEBATCH_AUTH_ENABLED": "false",
            "IMAGEBATCH_CHUNK_SIZE": "4",
            "IMAGEBATCH_TORCH_THREADS": "1",
            "IMAGEBATCH_DECODE_THREADS": "1",
            "IMAGEBATCH_WORKER_MODELS": "resnet18",
            "IMAGEBATCH_VISIBILITY_TIMEOUT": "10",
            "IMAGEBATCH_SWEEP_INTERVAL": "1",
        }
        settings.update({f"IMAGEBATCH_{k}": v for k, v in overrides.items()})
        return clean_env(**settings)


def prepare(torch_home: Path, image_root: Path, work_dir: Path) -> Setup:
    """Seeded random resnet18 weights and 40 photos: what every scenario runs on."""
    from imagebatch.worker.random_weights import write_random_checkpoint

    write_random_checkpoint("resnet18", torch_home, seed=0)
    write_photos(image_root, 40)
    return Setup(torch_home=torch_home, image_root=image_root, work_dir=work_dir)


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"condition not met within {timeout}s")


@cache
def _engine(database_url: str) -> Engine:
    """One engine per database for the harness's reads; no pool, so a restarted server is no matter."""
    connect_args = {} if database_url.startswith("sqlite") else {"connect_timeout": 3}
    return create_engine(database_url, poolclass=NullPool, connect_args=connect_args)


def status_counts(database_url: str, job_id: str) -> dict[str, int]:
    """Rows per status plus rows and distinct indexes, read straight from the database."""
    with _engine(database_url).connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM images WHERE job_id = :j GROUP BY status"), {"j": job_id}
        ).all()
        total, distinct = conn.execute(
            text("SELECT count(*), count(DISTINCT idx) FROM images WHERE job_id = :j"), {"j": job_id}
        ).one()
    return {**{status: count for status, count in rows}, "_rows": total, "_distinct": distinct}


def rows_in(database_url: str, job_id: str, status: str) -> int:
    """How many of the job's rows have `status` now."""
    return status_counts(database_url, job_id).get(status, 0)


def submit(client: httpx.Client, paths: list[Path], key: str | None = None) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post("/v1/jobs", json={"uris": [str(p) for p in paths]}, headers=headers)
    assert response.status_code in (200, 202), response.text
    return response.json()


def wait_final(client: httpx.Client, job_id: str, timeout: float, notes: dict) -> dict:
    """Poll until the job ends; answers other than 200 (e.g. 503 while a service is away) are
    tallied in notes["poll_status"] rather than treated as the job's document."""
    deadline, seen = time.monotonic() + timeout, notes.setdefault("poll_status", {})
    while time.monotonic() < deadline:
        try:
            response = client.get(f"/v1/jobs/{job_id}")
        except httpx.HTTPError as exc:
            seen[type(exc).__name__] = seen.get(type(exc).__name__, 0) + 1
            time.sleep(0.3)
            continue
        if response.status_code != 200:
            seen[str(response.status_code)] = seen.get(str(response.status_code), 0) + 1
        elif response.json()["state"] in ("completed", "failed", "cancelled"):
            return response.json()
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} not finished after {timeout}s")


def finish(
    outcome: Outcome, stack: Stack, client: httpx.Client, database_url: str, job_id: str, timeout: float
) -> Outcome:
    """Wait for the job, then fill the outcome from the rows and compare with the API's counts.

    A job that does not end raises with what a reader of a CI log needs: the rows by status, the
    workers' exit codes and the ends of their logs.
    """
    try:
        final = wait_final(client, job_id, timeout, outcome.notes)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; rows {status_counts(database_url, job_id)}\n{stack.all_logs()}") from None
    counts = status_counts(database_url, job_id)
    outcome.state = final["state"]
    outcome.succeeded, outcome.failed = counts.get("ok", 0), counts.get("error", 0)
    outcome.stored = outcome.succeeded + outcome.failed
    outcome.duplicates = counts["_rows"] - counts["_distinct"]
    api = final["counts"]
    outcome.api_counts_match = (api["succeeded"], api["failed"], api["total"]) == (
        outcome.succeeded,
        outcome.failed,
        counts["_rows"],
    )
    return outcome


def running(database_url: str, job_id: str) -> bool:
    return rows_in(database_url, job_id, "running") > 0


def progressed(database_url: str, job_id: str) -> bool:
    counts = status_counts(database_url, job_id)
    return counts.get("ok", 0) > 0 and counts.get("pending", 0) > 0


def start_stack(setup: Setup, env: dict[str, str], name: str) -> Stack:
    stack = Stack(env=env, log_dir=setup.work_dir / name / "logs")
    stack.start_api()
    return stack


def worker_sigkill(setup: Setup, database_url: str, redis_url: str, images: int = 24) -> Outcome:
    """SIGKILL the only worker while its chunk's rows are running; a second worker finishes."""
    outcome, began = Outcome("worker_sigkill", faults=1, expected=images), time.monotonic()
    # Sweeper deadline far away: the redelivery under test is the broker's (visibility timeout).
    env = setup.env(database_url, redis_url, "sigkill", CHUNK_DEADLINE="600")
    stack = start_stack(setup, env, "sigkill")
    try:
        victim = stack.start_worker("resnet18")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job_id = submit(client, setup.photos(images))["id"]
            wait_until(lambda: running(database_url, job_id), timeout=120, step=0.02)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            outcome.notes["running_at_kill"] = rows_in(database_url, job_id, "running")
            stack.start_worker("resnet18")
            finish(outcome, stack, client, database_url, job_id, timeout=180)
    finally:
        stack.stop()
    outcome.seconds = time.monotonic() - began
    return outcome


def worker_hang(setup: Setup, database_url: str, redis_url: str, images: int = 24, attempts: int = 3) -> Outcome:
    """SIGSTOP the only worker mid-chunk (hung, connection open): the sweeper requeues its chunk."""
    outcome, began = Outcome("worker_hang", faults=1, expected=images), time.monotonic()
    env = setup.env(
        database_url,
        redis_url,
        "hang",
        CHUNK_DEADLINE="4",
        CHUNK_MAX_ATTEMPTS=str(attempts),
        VISIBILITY_TIMEOUT="3600",
        WORKER_CONCURRENCY="1",
    )
    stack = start_stack(setup, env, "hang")
    hung = None
    try:
        hung = stack.start_worker("resnet18")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job_id = submit(client, setup.photos(images))["id"]
            wait_until(lambda: running(database_url, job_id), timeout=120, step=0.02)
            os.kill(hung.pid, signal.SIGSTOP)
            outcome.notes["running_at_hang"] = rows_in(database_url, job_id, "running")
            stack.start_worker("resnet18")
            finish(outcome, stack, client, database_url, job_id, timeout=180)
            outcome.notes["timed_out"] = timed_out_rows(database_url, job_id)
    finally:
        if hung is not None and hung.poll() is None:
            os.kill(hung.pid, signal.SIGKILL)
            hung.wait()
        stack.stop()
    outcome.seconds = time.monotonic() - began
    return outcome


def timed_out_rows(database_url: str, job_id: str) -> int:
    with _engine(database_url).connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM images WHERE job_id = :j AND error_category = 'timed_out'"), {"j": job_id}
        ).scalar_one()
