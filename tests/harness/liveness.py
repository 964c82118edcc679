"""Worker deaths at chosen points of a chunk, recovered through heartbeats rather than the broker.

The broker's redelivery is kept out of the way (VISIBILITY_TIMEOUT an hour, CHUNK_DEADLINE 15
minutes: the defaults), so a job finishes within seconds only if the sweeper sees that the
claimant stopped beating. Used by tests/system/faults/test_liveness.py and scripts/faults.py.
"""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import text

from tests.harness.faults import (
    Outcome,
    Setup,
    _engine,
    finish,
    rows_in,
    start_stack,
    status_counts,
    submit,
    wait_until,
)

# Where a worker dies: reading/decoding its chunk, in the forward pass, blocked in its write,
# just after a chunk was written, and holding fetched messages it has not claimed yet.
KILL_POINTS = ("decoding", "forward", "writing", "between", "idle")


@contextmanager
def locked_rows(database_url: str, job_id: str, status: str) -> Iterator[int]:
    """Hold row locks on the job's rows in `status` (PostgreSQL) until the block ends: a worker
    that needs them (to write its chunk, or to claim one) waits there."""
    with _engine(database_url).connect() as conn, conn.begin():
        rows = conn.execute(
            text("SELECT id FROM images WHERE job_id = :j AND status = :s FOR UPDATE"), {"j": job_id, "s": status}
        ).all()
        yield len(rows)


def _ok(database_url: str, job_id: str) -> int:
    return rows_in(database_url, job_id, "ok")


def _kill_at(point: str, victim: subprocess.Popen, database_url: str, job_id: str, notes: dict) -> None:
    """Wait for `point` in the victim's work on `job_id`, then SIGKILL it."""
    running = lambda: rows_in(database_url, job_id, "running") > 0  # noqa: E731
    if point == "between":
        wait_until(lambda: _ok(database_url, job_id) > 0, timeout=120, step=0.005)
    elif point in ("decoding", "forward"):
        wait_until(running, timeout=120, step=0.005)
        time.sleep(0.0 if point == "decoding" else 0.4)  # a chunk of 8 photos decodes in ~0.1-0.3 s here
    if point in ("writing", "idle"):
        wait_until(running, timeout=120, step=0.005)
        # writing: the claimed rows are locked, so the chunk's write waits; idle: the pending rows
        # are, so the worker finishes its chunk and then sits on fetched messages it cannot claim.
        with locked_rows(database_url, job_id, "running" if point == "writing" else "pending"):
            if point == "idle":
                try:
                    wait_until(lambda: _ok(database_url, job_id) > 0, timeout=30, step=0.02)
                except TimeoutError:  # seen once in six runs on a loaded machine: kill it as it stands
                    notes["idle_wait_timed_out"] = True
            time.sleep(1.5)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
    else:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    notes["running_at_kill"] = rows_in(database_url, job_id, "running")
    notes["ok_at_kill"] = _ok(database_url, job_id)


def worker_killed(
    setup: Setup,
    database_url: str,
    redis_url: str,
    *,
    point: str = "decoding",
    survivor: bool = False,
    cancel: bool = False,
    images: int = 32,
    name: str = "liveness",
) -> Outcome:
    """SIGKILL a worker at `point`; then start a new one (or let a second, surviving worker go on).

    Empty `database_url` and `redis_url`: the embedded default (SQLite database and broker).
    `cancel`: cancel the job right after the kill (it must still end `cancelled`).
    outcome.notes["recovery_seconds"]: from the kill to the job's end.
    """
    scenario = f"worker_sigkill_{point}_{'survivor' if survivor else 'restarted'}"
    outcome, began = Outcome(scenario, faults=1, expected=images), time.monotonic()
    env = setup.env(database_url, redis_url, name, CHUNK_SIZE="8", VISIBILITY_TIMEOUT="3600", SWEEP_INTERVAL="5")
    embedded = setup.work_dir / name / "imagebatch.sqlite"
    if not database_url:
        embedded.unlink(missing_ok=True)
        (setup.work_dir / name / "broker.sqlite").unlink(missing_ok=True)
    stack = start_stack(setup, env, name)
    database_url = database_url or f"sqlite:///{embedded}"
    try:
        victim = stack.start_worker("resnet18")
        if survivor:
            stack.start_worker("resnet18")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            wait_until(lambda: _workers_alive(database_url) == len(stack.workers), timeout=120, step=0.1)
            job_id = submit(client, setup.photos(images))["id"]
            _kill_at(point, victim, database_url, job_id, outcome.notes)
            killed = time.monotonic()
            if cancel:
                assert client.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
            if not survivor:
                stack.start_worker("resnet18")
            finish(outcome, stack, client, database_url, job_id, timeout=240)
            outcome.notes["recovery_seconds"] = round(time.monotonic() - killed, 1)
    finally:
        stack.stop()
    outcome.seconds = time.monotonic() - began
    return outcome


def _workers_alive(database_url: str) -> int:
    with _engine(database_url).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM workers")).scalar_one()


def worker_terminated(setup: Setup, database_url: str, redis_url: str, images: int = 32) -> Outcome:
    """SIGTERM the only worker mid-chunk: it hands its chunks back at once and a new worker finishes."""
    outcome, began = Outcome("worker_sigterm", faults=1, expected=images), time.monotonic()
    env = setup.env(database_url, redis_url, "sigterm", CHUNK_SIZE="8", VISIBILITY_TIMEOUT="3600", SWEEP_INTERVAL="0")
    stack = start_stack(setup, env, "sigterm")
    try:
        victim = stack.start_worker("resnet18")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            wait_until(lambda: _workers_alive(database_url) == 1, timeout=120, step=0.1)
            job_id = submit(client, setup.photos(images))["id"]
            wait_until(lambda: rows_in(database_url, job_id, "running") > 0, timeout=120, step=0.005)
            stopped = time.monotonic()
            victim.terminate()
            victim.wait(timeout=60)
            outcome.notes["exit_seconds"] = round(time.monotonic() - stopped, 2)
            outcome.notes["exit_code"] = victim.returncode
            outcome.notes["after_exit"] = status_counts(database_url, job_id)
            outcome.notes["workers_after_exit"] = _workers_alive(database_url)
            # No sweeper runs (SWEEP_INTERVAL=0): only the hand-back can bring the chunks back.
            stack.start_worker("resnet18")
            finish(outcome, stack, client, database_url, job_id, timeout=240)
    finally:
        stack.stop()
    outcome.seconds = time.monotonic() - began
    return outcome
