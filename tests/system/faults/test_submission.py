"""API restarts mid-submission and Idempotency-Key retries, with real API and worker processes."""

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from imagebatch.api.idempotency import scoped_key
from imagebatch.db.lifecycle import ImageSource, create_job
from imagebatch.db.models import Job, utcnow
from imagebatch.db.session import session_scope
from tests.harness.faults import Setup, status_counts
from tests.harness.services import scratch_database
from tests.harness.stack import Stack, wait_for_job
from tests.system.faults.conftest import PG_DATABASE, use_database

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


@pytest.fixture(scope="module")
def stack(fault_setup: Setup, redis_server: str) -> Iterator[Stack]:
    """API + one worker; the sweeper enqueues abandoned submissions after 2 s."""
    with scratch_database(PG_DATABASE) as pg, use_database(pg, PG_DATABASE):
        env = fault_setup.env(pg, redis_server, "submission", SUBMIT_GRACE="2")
        stack = Stack(env=env, log_dir=fault_setup.work_dir / "submission" / "logs")
        try:
            stack.start_api()
            stack.start_worker("resnet18")
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def _jobs_with_key(key: str) -> int:
    stored = scoped_key(key, None)  # auth is off in these stacks: no tenant
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.idempotency_key == stored))


def _job_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Job))


def _half_created(job_id: str, paths: list[Path], key: str | None) -> None:
    """The rows an API leaves when it dies after committing the job, before sending its chunks."""
    with session_scope() as session:
        job = create_job(
            session=session,
            job_id=job_id,
            model="resnet18",
            top_k=5,
            store_probabilities=False,
            precision="auto",
            chunk_size=4,
            images=[ImageSource(p.name, f"file:{p}") for p in paths],
            idempotency_key=scoped_key(key, None) if key else None,
        )
        job.created_at = utcnow() - timedelta(seconds=1)


def test_a_retry_with_the_same_idempotency_key_returns_the_first_job(client, fault_setup, stack):
    key = f"retry-{uuid.uuid4()}"
    paths = fault_setup.photos(6)
    first = client.post("/v1/jobs", json={"uris": [str(p) for p in paths]}, headers={"Idempotency-Key": key})
    second = client.post("/v1/jobs", json={"uris": [str(p) for p in paths]}, headers={"Idempotency-Key": key})
    assert (first.status_code, second.status_code) == (202, 200), (first.text, second.text)
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Location"] == f"/v1/jobs/{first.json()['id']}"
    assert _jobs_with_key(key) == 1
    final = wait_for_job(client, first.json()["id"], timeout=120)
    assert final["state"] == "completed" and final["counts"]["succeeded"] == 6


@pytest.mark.parametrize("key", ["", "has space", "x" * 201])
def test_a_malformed_idempotency_key_is_rejected(client, fault_setup, key):
    before = _job_count()
    response = client.post("/v1/jobs", json={"uris": [str(fault_setup.photos(1)[0])]}, headers={"Idempotency-Key": key})
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["detail"]
    assert _job_count() == before


def test_a_job_committed_but_never_enqueued_is_finished_by_the_clients_retry(client, fault_setup, stack):
    key, job_id = f"died-{uuid.uuid4()}", uuid.uuid4().hex
    _half_created(job_id, fault_setup.photos(5), key)
    retry = client.post(
        "/v1/jobs", json={"uris": [str(p) for p in fault_setup.photos(5)]}, headers={"Idempotency-Key": key}
    )
    assert retry.status_code == 200 and retry.json()["id"] == job_id
    final = wait_for_job(client, job_id, timeout=120)
    assert final["state"] == "completed" and final["counts"]["succeeded"] == 5
    counts = status_counts(stack.env["DATABASE_URL"], job_id)
    assert counts["_rows"] == counts["_distinct"] == 5 and _jobs_with_key(key) == 1


def test_a_job_committed_but_never_enqueued_and_never_retried_is_enqueued_by_the_sweeper(client, fault_setup):
    job_id = uuid.uuid4().hex
    _half_created(job_id, fault_setup.photos(4), None)
    final = wait_for_job(client, job_id, timeout=120)
    assert final["state"] == "completed" and final["counts"]["succeeded"] == 4
    with session_scope() as session:
        assert session.get(Job, job_id).enqueued_at is not None


def _start_upload(stack: Stack, paths: list[Path], key: str) -> socket.socket:
    """Send the headers and half of a multipart body, as a client does mid-upload."""
    boundary = "faultboundary"
    parts = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{p.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + p.read_bytes()
            + b"\r\n"
            for p in paths
        )
        + f"--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(parts)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", stack.port))
    sock.sendall(head.encode() + parts[: len(parts) // 2])
    return sock


def test_api_killed_mid_upload_leaves_no_job_and_the_retry_creates_it_once(client, fault_setup, stack):
    key, paths = f"upload-{uuid.uuid4()}", fault_setup.photos(6)
    before = _job_count()
    sock = _start_upload(stack, paths, key)
    os.kill(stack.api.pid, signal.SIGKILL)
    stack.api.wait()
    sock.close()
    stack.start_api()
    assert _job_count() == before and _jobs_with_key(key) == 0
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    first = client.post("/v1/jobs", files=files, headers={"Idempotency-Key": key})
    again = client.post("/v1/jobs", files=files, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (202, 200), (first.text, again.text)
    assert again.json()["id"] == first.json()["id"] and _jobs_with_key(key) == 1
    final = wait_for_job(client, first.json()["id"], timeout=120)
    assert final["state"] == "completed" and final["counts"]["succeeded"] == 6
