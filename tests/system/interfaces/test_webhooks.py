"""Completion webhooks against a loopback receiver: signed, retried after a 500, delivered once."""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imagebatch.core.config import settings
from imagebatch.core.webhooks import UnsafeUrl, check_callback_url
from tests.harness.images import write_photos
from tests.harness.stack import wait_for_job
from tests.system.conftest import WEBHOOK_SECRET, wait_until

pytestmark = pytest.mark.e2e


class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST; answers the first `fail_first` with 500."""

    def __init__(self, fail_first: int) -> None:
        self.requests: list[dict] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "at": time.monotonic()})
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/imagebatch"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver(fail_first=1)
    rx.thread.start()
    yield rx
    rx.server.shutdown()
    rx.server.server_close()


def test_completion_webhook_is_signed_retried_and_sent_once(client, receiver, tmp_path):
    photos = write_photos(tmp_path, 5)
    files = [("files", (p.name, p.read_bytes())) for p in photos]
    response = client.post("/v1/jobs", files=files, data={"callback_url": receiver.url})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.json()["webhook"]["state"] == "pending"
    final = wait_for_job(client, job_id, timeout=180)
    assert final["state"] == "completed"

    job = wait_until(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["webhook"]["state"] == "delivered" and j)
    assert job["webhook"]["attempts"] == 2 and job["webhook"]["error"] is None
    assert len(receiver.requests) == 2
    assert receiver.requests[1]["at"] - receiver.requests[0]["at"] >= 0.5  # backed off before retrying

    delivered = receiver.requests[1]
    headers = {k.lower(): v for k, v in delivered["headers"].items()}
    # The receiver's own check, written from the documented scheme rather than imagebatch's code.
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{headers['x-imagebatch-timestamp']}.".encode() + delivered["body"], hashlib.sha256
    ).hexdigest()
    assert headers["x-imagebatch-signature"] == f"sha256={expected}"
    assert abs(int(headers["x-imagebatch-timestamp"]) - time.time()) < 300
    payload = json.loads(delivered["body"])
    assert payload["event"] == "job.finished"
    assert payload["job"]["id"] == job_id and payload["job"]["state"] == "completed"
    assert payload["job"]["counts"] == final["counts"]
    # The job object is the API's own view; only its webhook part moved on since (sending -> delivered).
    assert {k: v for k, v in payload["job"].items() if k != "webhook"} == {
        k: v for k, v in job.items() if k != "webhook"
    }
    assert payload["job"]["webhook"]["state"] == "sending"
    assert payload["finished_at"] == job["timestamps"]["completed"]
    forged = hmac.new(b"wrong-secret", delivered["body"], hashlib.sha256).hexdigest()
    assert headers["x-imagebatch-signature"] != f"sha256={forged}"

    # Called once: nothing more arrives, even when the job is poked again.
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    time.sleep(1.5)
    assert len(receiver.requests) == 2


def test_cancelled_job_sends_its_webhook_from_the_api(client, receiver, stack):
    receiver.fail_first = 0
    # An image URL on a port where nothing listens: the chunk would fail, but we cancel first.
    response = client.post(
        "/v1/jobs",
        json={"uris": ["http://127.0.0.1:9/never.jpg"] * 3, "model": "resnet50", "callback_url": receiver.url},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    # No worker serves resnet50 in this stack, so the job stays queued until cancelled.
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelled"
    wait_until(lambda: receiver.requests, timeout=20)
    payload = json.loads(receiver.requests[0]["body"])
    assert payload["job"]["state"] == "cancelled" and payload["job"]["counts"]["cancelled"] == 3
    client.delete(f"/v1/jobs/{job_id}")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/",
    ],
)
def test_callback_urls_follow_the_outbound_url_policy(url, monkeypatch):
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", False)
    with pytest.raises(UnsafeUrl):
        check_callback_url(url)


def test_api_rejects_an_unsafe_callback_url_with_422(client, tmp_path):
    photo = write_photos(tmp_path, 1)[0]
    response = client.post(
        "/v1/jobs", files=[("files", (photo.name, photo.read_bytes()))], data={"callback_url": "ftp://example.com/x"}
    )
    assert response.status_code == 422
    assert "callback_url" in response.json()["detail"]


def test_the_safety_net_delivers_for_jobs_finished_elsewhere(client, receiver, stack, pg_url, monkeypatch):
    """A job ended by a path that sends nothing (here: failed straight in the database) still
    gets its webhook from deliver_due(), which every worker's sweeper runs."""
    from sqlalchemy import create_engine, update
    from sqlalchemy.orm import Session

    import imagebatch.db.webhooks as webhooks
    from imagebatch.db.models import Job

    receiver.fail_first = 0
    response = client.post(
        "/v1/jobs", json={"uris": ["http://127.0.0.1:9/a.jpg"], "model": "resnet50", "callback_url": receiver.url}
    )
    job_id = response.json()["id"]
    engine = create_engine(pg_url)
    with Session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="failed", error="test: ended elsewhere"))
        session.commit()
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "x")

    @contextmanager
    def scratch_scope():
        with Session(engine) as session, session.begin():
            yield session

    # This test process plays the worker: its deliveries use the stack's database.
    monkeypatch.setattr(webhooks, "session_scope", scratch_scope)
    try:
        assert webhooks.deliver_due() >= 1
        wait_until(lambda: receiver.requests, timeout=20)
        assert wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["webhook"]["state"] == "delivered")
        assert webhooks.deliver_due() == 0  # claimed once: never sent twice
    finally:
        engine.dispose()
    assert json.loads(receiver.requests[0]["body"])["job"]["state"] == "failed"
    assert len(receiver.requests) == 1
    client.delete(f"/v1/jobs/{job_id}")
