"""Uploads whose request dies mid-body, from a raw socket: cut off, or stalled; no blob may stay behind."""

import io
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.harness.stack import Stack
from tests.system.conftest import wait_until
from tests.system.security.conftest import make_key

IDLE_TIMEOUT = 2  # IMAGEBATCH_UPLOAD_IDLE_TIMEOUT of this module's API, in seconds
BOUNDARY = "imagebatch-cut-boundary"
PART_BYTES = 300_000


@pytest.fixture(scope="module")
def upload_api(secure_env, tmp_path_factory) -> Iterator[Stack]:
    """The embedded defaults (SQLite, SQLite broker, blobs in DATA_DIR/blobs), no worker."""
    data_dir = tmp_path_factory.mktemp("interrupted_uploads")
    env = {k: v for k, v in secure_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(IMAGEBATCH_DATA_DIR=str(data_dir), IMAGEBATCH_UPLOAD_IDLE_TIMEOUT=str(IDLE_TIMEOUT))
    stack = Stack(env=env, log_dir=data_dir / "logs")
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def key(upload_api) -> str:
    return make_key(f"sqlite:///{upload_api.env['IMAGEBATCH_DATA_DIR']}/imagebatch.sqlite", "cut")


def _blobs(api: Stack) -> Path:
    return Path(api.env["IMAGEBATCH_DATA_DIR"]) / "blobs"


def _stored(api: Stack) -> list[Path]:
    """Every file in the API's blob store."""
    root = _blobs(api)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _multipart(parts: int) -> bytes:
    body = b""
    for i in range(parts):
        body += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="part{i}.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + os.urandom(PART_BYTES)
            + b"\r\n"
        )
    return body + f"--{BOUNDARY}--\r\n".encode()


def _start_upload(api: Stack, key: str) -> socket.socket:
    """Send the headers and the first two of four parts of a multipart body, then nothing more."""
    body = _multipart(4)
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    # Two whole parts and a little of the third, so two images have certainly reached the store.
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    sock.sendall(head + body[: 2 * (PART_BYTES + 200) + 1000])
    return sock


def _response(sock: socket.socket) -> str:
    """The raw HTTP response, read until its Content-Length is complete or the server closes."""
    data = b""
    while not (b"\r\n\r\n" in data and _complete(data)):
        block = sock.recv(65536)
        if not block:
            break
        data += block
    return data.decode(errors="replace")


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _jobs(api: Stack, key: str) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{api.url}/v1/jobs", headers=headers, timeout=30).json()["items"]


def test_a_request_cut_off_mid_body_leaves_no_blob(upload_api, key):
    assert _stored(upload_api) == []
    sock = _start_upload(upload_api, key)
    # The upload really was under way: its first images were in the store.
    stored = wait_until(lambda: len(_stored(upload_api)) >= 2 and _stored(upload_api), timeout=20)
    assert all(path.parent.parent == _blobs(upload_api) for path in stored)
    sock.close()  # the client goes away mid-body
    wait_until(lambda: _stored(upload_api) == [], timeout=20)
    assert not any(_blobs(upload_api).iterdir()) and _jobs(upload_api, key) == []


def test_a_stalled_upload_is_dropped_with_408_and_leaves_no_blob(upload_api, key):
    assert _stored(upload_api) == []
    sock = _start_upload(upload_api, key)
    wait_until(lambda: len(_stored(upload_api)) >= 2, timeout=20)
    started = time.monotonic()
    # The client keeps the connection open and sends nothing more.
    answer = _response(sock)
    waited = time.monotonic() - started
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "IMAGEBATCH_UPLOAD_IDLE_TIMEOUT" in answer and waited < IDLE_TIMEOUT + 15, waited
    assert _stored(upload_api) == [] and not any(_blobs(upload_api).iterdir())
    sock.close()
    assert _jobs(upload_api, key) == []


def test_a_whole_upload_still_goes_through(upload_api, key):
    """The same raw request, sent in full, slower than nothing but faster than the idle timeout."""
    body = _multipart(2)
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Idempotency-Key": uuid.uuid4().hex,
    }

    def slowly() -> Iterator[bytes]:
        for start in range(0, len(body), 100_000):
            time.sleep(IDLE_TIMEOUT / 4)
            yield body[start : start + 100_000]

    response = httpx.post(f"{upload_api.url}/v1/jobs", content=slowly(), headers=headers, timeout=60)
    assert response.status_code == 202, response.text
    assert response.json()["counts"]["total"] == 2 and len(_stored(upload_api)) == 2
    httpx.delete(f"{upload_api.url}/v1/jobs/{response.json()['id']}", headers=headers, timeout=30)
    assert _stored(upload_api) == []


def test_an_api_sigkilled_mid_upload_leaves_blobs_that_the_sweeper_removes(secure_env, tmp_path):
    """The process itself dies: nothing in it can clean up; a worker's sweeper does, sparing the jobs' files."""
    data_dir = tmp_path / "killed_api"
    env = {k: v for k, v in secure_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_UPLOAD_ORPHAN_GRACE="4",  # the sweeper looks every second (a quarter of it)
        IMAGEBATCH_SWEEP_INTERVAL="1",
    )
    stack = Stack(env=env, log_dir=data_dir / "logs")
    blobs = data_dir / "blobs"
    try:
        stack.start_api()
        key = make_key(f"sqlite:///{data_dir}/imagebatch.sqlite", "killed")
        photo = io.BytesIO()
        Image.new("RGB", (32, 32), "teal").save(photo, "JPEG")
        headers = {"Authorization": f"Bearer {key}"}
        kept = httpx.post(
            f"{stack.url}/v1/jobs", files=[("files", ("kept.jpg", photo.getvalue()))], headers=headers, timeout=30
        )
        assert kept.status_code == 202, kept.text
        kept_id = kept.json()["id"]
        sock = _start_upload(stack, key)
        wait_until(lambda: len(_stored(stack)) >= 3, timeout=20)  # the kept job's file and two parts
        assert stack.api is not None
        os.kill(stack.api.pid, signal.SIGKILL)
        stack.api.wait()
        sock.close()
        orphans = [p for p in blobs.iterdir() if p.name != kept_id]
        assert len(orphans) == 1 and len(list(orphans[0].iterdir())) >= 2  # left behind by the dead process
        stack.start_worker("resnet18")
        wait_until(lambda: not orphans[0].exists(), timeout=120)
        assert (blobs / kept_id).is_dir()  # a job's files stay
    finally:
        stack.stop()
