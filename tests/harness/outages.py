"""Outage scenarios: the broker or the database goes away mid-job and comes back; nothing is lost."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from imagebatch.core.queueing import queue_for_model
from tests.harness.faults import Outcome, Setup, finish, progressed, rows_in, start_stack, submit, wait_until
from tests.harness.servers import PostgresCluster, RedisServer
from tests.harness.stack import Stack


@contextmanager
def redis_stack(setup: Setup, database_url: str, name: str, **overrides: str) -> Iterator[tuple[RedisServer, Stack]]:
    """A private append-only Redis and an API on it (workers are the scenario's to start)."""
    server = RedisServer()
    server.start()
    try:
        stack = start_stack(setup, setup.env(database_url, server.url, name, **overrides), name)
        try:
            yield server, stack
        finally:
            stack.stop()
    finally:
        server.close()


def redis_restart(setup: Setup, database_url: str, images: int = 32) -> Outcome:
    """Restart a private append-only Redis mid-job (workers and API reconnect)."""
    outcome, began = Outcome("redis_restart", faults=1, expected=images), time.monotonic()
    with redis_stack(setup, database_url, "redis") as (server, stack):
        stack.start_worker("resnet18")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job_id = submit(client, setup.photos(images))["id"]
            wait_until(lambda: progressed(database_url, job_id), timeout=120)
            fault = time.monotonic()
            server.restart(down_seconds=2)
            finish(outcome, stack, client, database_url, job_id, timeout=180)
            outcome.notes["recovery_seconds"] = round(time.monotonic() - fault, 1)
    outcome.seconds = time.monotonic() - began
    return outcome


def redis_down_while_chunks_finish(setup: Setup, database_url: str, images: int = 48, chunk: int = 16) -> Outcome:
    """Stop Redis while the worker's two chunks in flight run; start it after both committed.

    Both acknowledgements are lost with the connection, so kombu counts every prefetch slot as
    held and the worker reads nothing more from the broker: it has to notice by itself
    (worker.broker_watch), reconnect and take the remaining chunk. The job is submitted before
    the worker starts so the worker's first fetch takes two chunks at once.
    """
    outcome, began = Outcome("redis_lost_acks", faults=1, expected=images), time.monotonic()
    with (
        redis_stack(setup, database_url, "lost_acks", CHUNK_SIZE=str(chunk), WORKER_CONCURRENCY="2") as (server, stack),
        httpx.Client(base_url=stack.url, timeout=30) as client,
    ):
        job_id = submit(client, setup.photos(images))["id"]
        stack.start_worker("resnet18")
        wait_until(lambda: rows_in(database_url, job_id, "running") >= 2 * chunk, timeout=120, step=0.01)
        server.stop()
        outcome.notes["ok_at_stop"] = rows_in(database_url, job_id, "ok")
        wait_until(lambda: rows_in(database_url, job_id, "running") == 0, timeout=120)
        outcome.notes["ok_while_down"] = rows_in(database_url, job_id, "ok")
        time.sleep(2)  # the lost acknowledgements are reported while the broker is away
        server.start()
        finish(outcome, stack, client, database_url, job_id, timeout=120)
    outcome.seconds = time.monotonic() - began
    return outcome


def redis_loses_a_message(setup: Setup, database_url: str, images: int = 32, orphan_after: float = 5) -> Outcome:
    """The broker loses a chunk message before any worker reads it; the sweeper resends the chunk.

    Stands for the message kombu can lose when Redis goes away as a worker fetches it (popped,
    not yet recorded as unacknowledged): the job's other chunks finish, the job sits idle with
    pending rows and an empty queue, and after ORPHAN_AFTER the sweeper sends that chunk again.
    """
    outcome, began = Outcome("redis_lost_message", faults=1, expected=images), time.monotonic()
    with (
        redis_stack(setup, database_url, "lost_message", ORPHAN_AFTER=str(orphan_after)) as (server, stack),
        httpx.Client(base_url=stack.url, timeout=30) as client,
    ):
        job_id = submit(client, setup.photos(images))["id"]  # answered once every chunk is sent
        broker = redis.Redis.from_url(server.url)
        # The list a worker pops from the right: its rightmost message is the job's first chunk.
        dropped = broker.rpop(queue_for_model("resnet18"))
        broker.close()
        outcome.notes["dropped_chunk"] = json.loads(dropped)["headers"]["argsrepr"] if dropped else None
        stack.start_worker("resnet18")
        finish(outcome, stack, client, database_url, job_id, timeout=120)
        outcome.notes["resends"] = stack.logs("worker0", tail=None).count("behind an empty queue (")
    outcome.seconds = time.monotonic() - began
    return outcome


def _probe_while_down(client: httpx.Client, job_id: str, uri: Path) -> dict:
    """What clients see while the database is away: status codes and the slowest answer."""
    seen, slowest, detail = set(), 0.0, ""
    probes = [
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", "/v1/jobs", None),
        ("GET", "/readyz", None),
        ("POST", "/v1/jobs", {"uris": [str(uri)]}),
    ]
    for method, path, body in probes:
        t0 = time.monotonic()
        response = client.request(method, path, json=body)
        slowest = max(slowest, time.monotonic() - t0)
        seen.add(response.status_code)
        detail = detail or response.json().get("detail", "")
    return {"status_codes": sorted(seen), "slowest_seconds": round(slowest, 3), "detail": str(detail)[:200]}


def postgres_restart(setup: Setup, redis_url: str, images: int = 32, down_seconds: float = 4) -> Outcome:
    """Stop a private PostgreSQL mid-job, probe the API, start it again; the job completes."""
    outcome, began = Outcome("postgres_restart", faults=1, expected=images), time.monotonic()
    cluster = PostgresCluster()
    cluster.start()
    stack = start_stack(setup, setup.env(cluster.url, redis_url, "postgres"), "postgres")
    try:
        stack.start_worker("resnet18")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job_id = submit(client, setup.photos(images))["id"]
            wait_until(lambda: progressed(cluster.url, job_id), timeout=120)
            cluster.stop()
            down_at = time.monotonic()
            outcome.notes["while_down"] = _probe_while_down(client, job_id, setup.photos(1)[0])
            time.sleep(max(0.0, down_seconds - (time.monotonic() - down_at)))
            cluster.start()
            finish(outcome, stack, client, cluster.url, job_id, timeout=240)
            outcome.notes["recovery_seconds"] = round(time.monotonic() - down_at, 1)
    finally:
        stack.stop()
        cluster.close()
    outcome.seconds = time.monotonic() - began
    return outcome
