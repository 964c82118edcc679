"""Operations: worker and API Prometheus metrics, and JSON logs carrying job and chunk ids."""

import io
import json
import logging

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from imagebatch.core.logging import ContextFilter, JsonFormatter, log_context
from imagebatch.core.queueing import queue_for_model
from tests.harness.images import write_broken, write_photos
from tests.harness.stack import wait_for_job
from tests.system.conftest import CHUNK_SIZE, wait_until

pytestmark = pytest.mark.e2e


def _get(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=10).text
    except httpx.TransportError:
        return None  # a worker still starting


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics page keyed by (name, sorted labels)."""
    text = wait_until(lambda: _get(url), timeout=60)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_worker_metrics_count_a_jobs_chunks_and_images(client, stack, tmp_path):
    url = f"http://127.0.0.1:{stack.env['IMAGEBATCH_WORKER_METRICS_PORT']}/metrics"
    paths = write_photos(tmp_path, 6) + [write_broken(tmp_path / "b")["text"]]
    before = scrape(url)
    response = client.post("/v1/jobs", files=[("files", (p.name, p.read_bytes())) for p in paths])
    job = wait_for_job(client, response.json()["id"], timeout=180)
    assert job["counts"]["succeeded"] == 6 and job["counts"]["failed"] == 1
    after = scrape(url)
    chunks = -(-len(paths) // CHUNK_SIZE)
    assert delta(after, before, "imagebatch_worker_images_total", outcome="succeeded") == 6
    assert delta(after, before, "imagebatch_worker_images_total", outcome="failed") == 1
    assert delta(after, before, "imagebatch_worker_chunks_total", outcome="processed") == chunks
    for stage in ("decode", "forward", "write"):
        assert delta(after, before, "imagebatch_worker_chunk_stage_seconds_count", stage=stage) == chunks
        assert delta(after, before, "imagebatch_worker_chunk_stage_seconds_sum", stage=stage) > 0
    # Each chunk's forward pass saw its decoded images: 4 and 2 here (the text file never decodes).
    assert delta(after, before, "imagebatch_worker_batch_size_sum") == 6
    assert delta(after, before, "imagebatch_worker_batch_size_bucket", le="4.0") == chunks


def test_api_metrics_report_queue_depth_from_redis(stack, redis_url):
    # No worker of this stack serves resnet50, so whatever waits on its queue stays there.
    broker = redis.Redis.from_url(redis_url)
    queue = queue_for_model("resnet50")
    broker.lpush(queue, *[f"marker-{i}" for i in range(3)])
    try:
        samples = scrape(f"{stack.url}/metrics")
        expected = broker.llen(queue)  # the independent count, straight from Redis
        assert expected >= 3
        assert samples[("imagebatch_queue_depth", (("model", "resnet50"),))] == expected
        assert samples[("imagebatch_broker_up", ())] == 1
        assert ("imagebatch_jobs", (("state", "completed"),)) in samples
    finally:
        for i in range(3):
            broker.lrem(queue, 0, f"marker-{i}")
        broker.close()


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_service_logs_are_json_with_job_and_chunk_ids(client, stack, tmp_path):
    paths = write_photos(tmp_path, 5)
    job_id = client.post("/v1/jobs", files=[("files", (p.name, p.read_bytes())) for p in paths]).json()["id"]
    wait_for_job(client, job_id, timeout=180)
    worker_records = _json_lines((stack.log_dir / "worker0.log").read_text())
    api_records = _json_lines((stack.log_dir / "api.log").read_text())
    assert worker_records and api_records
    mine = [r for r in worker_records if r.get("job_id") == job_id]
    assert {r["chunk"] for r in mine if r["logger"] == "imagebatch.worker.runner"} == {"0-4", "4-5"}
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in worker_records + api_records)
    submitted = [r for r in api_records if r.get("job_id") == job_id and "queued" in r["message"]]
    assert submitted, "the API's submission record carries the new job's id"


def test_json_formatter_carries_context_extras_and_exceptions():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    log = logging.getLogger("tests.interfaces.jsonlog")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        with log_context(job_id="abc123", chunk="8-12"):
            log.info("chunk %s done", "x", extra={"images": 4})
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
        log.info("outside")
    finally:
        log.removeHandler(handler)
    first, second, third = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "chunk x done" and first["job_id"] == "abc123" and first["chunk"] == "8-12"
    assert first["images"] == 4 and first["level"] == "INFO"
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]
    assert "job_id" not in third and "chunk" not in third


def test_worker_sends_the_events_flower_reads(client, stack, redis_url, tmp_path):
    """Flower's data: worker heartbeats and task events on the broker (IMAGEBATCH_WORKER_EVENTS)."""
    import threading

    from celery import Celery

    seen: list[dict] = []
    app = Celery(broker=redis_url)
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": seen.append})
        capture = threading.Thread(target=lambda: receiver.capture(limit=None, timeout=30), daemon=True)
        capture.start()
        # A heartbeat first: proof the worker is seen online and the receiver is consuming.
        wait_until(lambda: any(e["type"] == "worker-heartbeat" for e in seen), timeout=20)
        paths = write_photos(tmp_path, 2)
        job_id = client.post("/v1/jobs", files=[("files", (p.name, p.read_bytes())) for p in paths]).json()["id"]
        wait_for_job(client, job_id, timeout=180)
        wait_until(lambda: any(e["type"] == "task-succeeded" for e in seen), timeout=20)
        receiver.should_stop = True
    succeeded = [e for e in seen if e["type"] == "task-succeeded"]
    received = [e for e in seen if e["type"] == "task-received" and job_id in str(e.get("args"))]
    assert succeeded and received
