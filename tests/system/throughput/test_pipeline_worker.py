"""A real worker with two chunks in flight: chunks overlap, each message is acked only after its
commit, the number of held messages stays bounded, and every row gets its own image's result."""

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from imagebatch.worker.timing import parse_timing
from tests.harness.reference import reference_probabilities
from tests.harness.services import clean_env, libpq_url
from tests.harness.stack import Stack, wait_for_job

CHUNK = 4
pytestmark = pytest.mark.timeout(240)


class _GatedServer(http.server.ThreadingHTTPServer):
    """Serves one image file, holding every response until `release` is set."""

    def __init__(self, image: bytes) -> None:
        self.image, self.release, self.requested = image, threading.Event(), threading.Event()
        super().__init__(("127.0.0.1", 0), _GatedHandler)


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    server: _GatedServer

    def do_GET(self) -> None:  # noqa: N802
        self.server.requested.set()
        self.server.release.wait(timeout=120)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.server.image)))
        self.end_headers()
        self.wfile.write(self.server.image)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def gated(bench_photos) -> Iterator[_GatedServer]:
    server = _GatedServer(bench_photos[0].read_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()


def _unacked_chunks(client: redis.Redis) -> list[list]:
    """Args of the chunk messages a worker holds without having acked them (kombu's unacked hash)."""
    held = []
    for raw in client.hvals("unacked"):
        message = json.loads(raw)[0]
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        held.append(args)
    return held


def _statuses(pg_url: str, job_id: str) -> dict[int, str]:
    with psycopg.connect(libpq_url(pg_url)) as conn:
        rows = conn.execute("SELECT idx, status FROM images WHERE job_id = %s", (job_id,)).fetchall()
    return dict(rows)


def _wait(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_chunks_overlap_and_ack_only_after_commit(
    tmp_path: Path, torch_home: Path, bench_photos, pg_url: str, redis_url: str, gated: _GatedServer
) -> None:
    photos = [p for i, p in enumerate(bench_photos) if i != 7][:8]  # small ones: a quick test
    uris = [f"http://127.0.0.1:{gated.server_port}/held.jpg", *[str(p) for p in photos[1:]]]
    uris += [str(p) for p in photos[:4]]  # 12 images = 3 chunks; chunk 0 waits on the server
    env = clean_env(
        IMAGEBATCH_DATABASE_URL=pg_url,
        IMAGEBATCH_REDIS_URL=redis_url,
        TORCH_HOME=str(torch_home),
        IMAGEBATCH_DATA_DIR=str(tmp_path / "data"),
        IMAGEBATCH_ALLOWED_ROOTS=str(photos[0].parent),
        IMAGEBATCH_CHUNK_SIZE=str(CHUNK),
        IMAGEBATCH_WORKER_CONCURRENCY="2",
        IMAGEBATCH_DECODE_MODE="exact",
        IMAGEBATCH_FETCH_TIMEOUT="120",
        IMAGEBATCH_SWEEP_INTERVAL="0",
    )
    stack = Stack(env, tmp_path / "logs")
    broker = redis.Redis.from_url(redis_url)
    try:
        stack.start_api()
        stack.start_worker("resnet18")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            response = client.post("/v1/jobs", json={"uris": uris, "model": "resnet18", "precision": "fp32"})
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            assert gated.requested.wait(timeout=120), stack.all_logs()
            # Chunk 0 sits in its read stage; the second thread runs chunks 1 and 2 to the end.
            _wait(lambda: all(s == "ok" for i, s in _statuses(pg_url, job_id).items() if i >= CHUNK))
            statuses = _statuses(pg_url, job_id)
            assert {statuses[i] for i in range(CHUNK)} == {"running"}
            _wait(lambda: len(_unacked_chunks(broker)) == 1)
            assert _unacked_chunks(broker) == [[job_id, 0, CHUNK]]  # held, not acked: not committed
            gated.release.set()
            job = wait_for_job(client, job_id, timeout=120)
            assert job["state"] == "completed" and job["counts"]["succeeded"] == len(uris), job
            _wait(lambda: not _unacked_chunks(broker), timeout=30)
            assert job["reproducibility"]["decode"] == "exact"
            results = {r["source"]: r for r in client.get(f"/v1/jobs/{job_id}/results?limit=100").json()["items"]}
    finally:
        stack.stop()
        broker.close()
    held_path = photos[0]
    for uri, result in results.items():
        path = held_path if uri.startswith("http") else Path(uri)
        expected = reference_probabilities("resnet18", torch_home, path)
        assert result["top_k"][0]["index"] == int(expected.argmax()), uri
        assert result["confidence"] == pytest.approx(float(expected.max()), abs=1e-4), uri
    timings = [t for t in map(parse_timing, stack.logs("worker0", tail=None).splitlines()) if t is not None]
    assert len({t["thread"] for t in timings}) == 2, "both pool threads ran chunks"
