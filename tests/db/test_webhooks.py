"""Webhook delivery end to end against a loopback receiver: claim, the API's job view, signature, record."""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import update

from imagebatch.core import webhooks as http
from imagebatch.core.config import settings
from imagebatch.db import lifecycle, views, webhooks
from imagebatch.db.models import Job, utcnow
from tests.db.helpers import add_job, job_of, scope_on


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    """(URL, requests): an HTTP server on 127.0.0.1 answering 204 to every POST."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _deliveries_use_the_test_database(db, monkeypatch) -> None:
    monkeypatch.setattr(webhooks, "session_scope", scope_on(db))
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "test-secret")


def _finished(db, job_id: str, url: str) -> None:
    add_job(db, job_id, total=3, callback_url=url)
    with db.begin() as session:
        lifecycle.request_cancel(session=session, job_id=job_id)


def test_a_finished_job_is_delivered_once_signed_with_the_apis_job_view(db, receiver):
    url, received = receiver
    _finished(db, "hooked", url)
    thread = webhooks.deliver_in_background("hooked")
    thread.join(timeout=30)
    assert webhooks.deliver_in_background("hooked") is None and webhooks.deliver_due() == 0
    (request,) = received
    headers, body = request["headers"], request["body"]
    assert http.verify("test-secret", headers["x-imagebatch-timestamp"], body, headers["x-imagebatch-signature"])
    assert (headers["x-imagebatch-event"], headers["x-imagebatch-job"]) == ("job.finished", "hooked")
    payload = json.loads(body)
    with db() as session:
        now = views.load_job_view(session, "hooked").as_json()
    assert now["webhook"]["state"] == "delivered" and now["webhook"]["attempts"] == 1
    assert payload["job"]["webhook"]["state"] == "sending"
    assert {**payload["job"], "webhook": None} == {**now, "webhook": None}
    assert payload["event"] == "job.finished" and payload["finished_at"] == now["timestamps"]["cancelled"]


def test_a_running_job_sends_nothing(db, receiver):
    url, received = receiver
    add_job(db, "busy", total=2, callback_url=url)
    assert webhooks.deliver_in_background("busy") is None and webhooks.deliver_due() == 0
    assert received == [] and job_of(db, "busy").webhook_state == "pending"


def test_the_safety_net_resends_a_delivery_whose_process_died_but_not_one_in_flight(db, receiver):
    url, received = receiver
    _finished(db, "died", url)
    _finished(db, "in_flight", url)
    long_ago = utcnow() - timedelta(seconds=http.delivery_lease() + 5)
    with db.begin() as session:
        session.execute(
            update(Job).where(Job.id == "died").values(webhook_state="sending", webhook_claimed_at=long_ago)
        )
        session.execute(
            update(Job).where(Job.id == "in_flight").values(webhook_state="sending", webhook_claimed_at=utcnow())
        )
    assert webhooks.deliver_due() == 1
    for thread in threading.enumerate():
        if thread.name.startswith("webhook-"):
            thread.join(timeout=30)
    assert [r["headers"]["x-imagebatch-job"] for r in received] == ["died"]
    assert job_of(db, "died").webhook_state == "delivered" and job_of(db, "in_flight").webhook_state == "sending"


def test_a_stored_callback_without_a_secret_fails_clearly_and_sends_nothing(db, receiver, monkeypatch):
    url, received = receiver
    _finished(db, "unsigned", url)
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "")
    webhooks.deliver_in_background("unsigned").join(timeout=30)
    job = job_of(db, "unsigned")
    assert received == []
    assert job.webhook_state == "failed" and "IMAGEBATCH_WEBHOOK_SECRET is not set" in job.webhook_error
