"""core.webhooks over real HTTP: signed POST, retried on 5xx, refused on 4xx, unsafe URLs never called."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imagebatch.core import webhooks
from imagebatch.core.config import settings


class Receiver:
    """A loopback HTTP server answering POSTs with the next of `answers` (then 204)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers, self.requests = answers, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver(monkeypatch) -> Iterator[Receiver]:
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "s3cret")
    monkeypatch.setattr(settings, "WEBHOOK_MAX_ATTEMPTS", 3)
    rx = Receiver([])
    yield rx
    rx.server.shutdown()
    rx.server.server_close()


def test_a_delivery_is_signed_and_retried_after_a_server_error(receiver):
    receiver.answers = [503]
    outcome = webhooks.deliver(receiver.url, {"event": "job.finished", "job": {"id": "j"}}, "j")
    assert outcome == webhooks.Delivery(attempts=2, error=None)
    headers, body = receiver.requests[-1]
    assert json.loads(body) == {"event": "job.finished", "job": {"id": "j"}}
    assert webhooks.verify("s3cret", headers["x-imagebatch-timestamp"], body, headers["x-imagebatch-signature"])
    assert not webhooks.verify("other", headers["x-imagebatch-timestamp"], body, headers["x-imagebatch-signature"])
    assert (headers["x-imagebatch-event"], headers["x-imagebatch-job"]) == ("job.finished", "j")


def test_a_refusal_is_not_retried_and_an_unsafe_url_is_never_called(receiver, monkeypatch):
    receiver.answers = [404]
    assert webhooks.deliver(receiver.url, {}, "j") == webhooks.Delivery(1, "receiver refused with 404")
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", False)
    outcome = webhooks.deliver(receiver.url, {}, "j")
    assert outcome.attempts == 0 and "127.0.0.1" in outcome.error
    assert len(receiver.requests) == 1


def test_the_lease_outlasts_every_attempt_and_backoff(monkeypatch):
    monkeypatch.setattr(settings, "WEBHOOK_MAX_ATTEMPTS", 5)
    monkeypatch.setattr(settings, "WEBHOOK_TIMEOUT", 10.0)
    assert webhooks.delivery_lease() == 5 * 20 + (1 + 2 + 4 + 8) + 60


def test_nothing_is_signed_or_sent_with_an_empty_key(receiver, monkeypatch):
    """Defence in depth: a job stored with a callback while the secret is unset fails its
    delivery with a clear error instead of sending a signature anyone could forge."""
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "")
    outcome = webhooks.deliver(receiver.url, {"event": "job.finished"}, "j")
    assert outcome.attempts == 0 and "IMAGEBATCH_WEBHOOK_SECRET is not set" in outcome.error
    assert receiver.requests == []
    with pytest.raises(ValueError, match="empty key"):
        webhooks.signature("", "1700000000", b"{}")
