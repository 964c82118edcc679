"""Completion webhooks: check callback URLs, sign payloads (HMAC-SHA256), deliver once with retries."""

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from imagebatch.db.jobs import image_counts
from imagebatch.db.models import FINAL_STATES, Job, utcnow
from imagebatch.db.session import session_scope
from imagebatch.core import netguard
from imagebatch.core.config import settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Imagebatch-Signature"
TIMESTAMP_HEADER = "X-Imagebatch-Timestamp"
EVENT = "job.finished"
# Seconds between attempts grow 1, 2, 4, ... up to this.
_MAX_BACKOFF = 60.0
_BACKOFF_BASE = 1.0


class UnsafeUrl(ValueError):
    """A callback URL the service refuses to call (scheme, credentials or a private address)."""


class RetryableResponse(Exception):
    """The receiver answered 5xx/408/429: worth trying again later."""


def check_callback_url(url: str) -> str:
    """The URL if it may be called, else UnsafeUrl naming why.

    The same policy as image URLs (imagebatch.netguard): http(s) only, no credentials, every
    resolved address public unless IMAGEBATCH_ALLOW_PRIVATE_URLS is set (metadata addresses
    are refused even then, as for image URLs).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"must be an http:// or https:// URL (got {url!r})")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials; the payload is signed instead")
    allow_private = settings.ALLOW_PRIVATE_URLS
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        netguard.check_host_name(parts.hostname, allow_private=allow_private)
        netguard.resolve_public(parts.hostname, port, allow_private=allow_private)
    except (netguard.BlockedAddress, OSError) as exc:
        raise UnsafeUrl(str(exc)) from exc
    return url


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """'sha256=' + hex HMAC-SHA256 of '<timestamp>.<body>' (the timestamp defeats replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does: constant-time comparison of the signature header."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def _claim(job_id: str) -> dict[str, Any] | None:
    """Move a final job's webhook from pending to sending; the payload if this caller won."""
    with session_scope() as session:
        won = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.webhook_state == "pending", Job.state.in_(FINAL_STATES))
            .values(webhook_state="sending")
        ).rowcount
        if not won:
            return None
        job = session.get(Job, job_id)
        stamp = job.completed_at or job.failed_at or job.cancelled_at
        return {
            "event": EVENT,
            "job": {
                "id": job.id, "state": job.state, "model": job.model, "error": job.error,
                "counts": image_counts(session, job_id),
                "finished_at": stamp.isoformat() if stamp else None,
                "links": {"self": f"/v1/jobs/{job.id}", "results": f"/v1/jobs/{job.id}/results"},
            },
            "url": job.callback_url,
        }


def _record(job_id: str, **values: Any) -> None:
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _post(client: httpx.Client, url: str, body: bytes, job_id: str) -> httpx.Response:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Imagebatch-Event": EVENT,
        "X-Imagebatch-Job": job_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(settings.WEBHOOK_SECRET, timestamp, body),
    }
    response = client.post(url, content=body, headers=headers)
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise RetryableResponse(f"receiver answered {response.status_code}")
    return response


def _send(job_id: str, claimed: dict[str, Any]) -> str:
    """POST the claimed payload with retries and record the outcome on the job."""
    url = claimed.pop("url")
    body = json.dumps(claimed, separators=(",", ":")).encode()
    attempts = 0
    try:
        check_callback_url(url)  # again: DNS may have changed since submission
        retrying = Retrying(
            stop=stop_after_attempt(settings.WEBHOOK_MAX_ATTEMPTS),
            wait=wait_exponential(multiplier=_BACKOFF_BASE, max=_MAX_BACKOFF),
            retry=retry_if_exception_type((httpx.TransportError, RetryableResponse)),
        )
        with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT, follow_redirects=False) as client:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    response = _post(client, url, body, job_id)
        if response.status_code >= 400:
            raise RetryableResponse(f"receiver refused with {response.status_code}")
    except (UnsafeUrl, RetryError, RetryableResponse, httpx.HTTPError) as exc:
        cause = exc.last_attempt.exception() if isinstance(exc, RetryError) else exc
        logger.warning("job %s: webhook to %s failed after %d attempt(s): %s", job_id, url, attempts, cause,
                       extra={"job_id": job_id})
        _record(job_id, webhook_state="failed", webhook_attempts=attempts, webhook_error=str(cause)[:1000])
        return "failed"
    logger.info("job %s: webhook delivered to %s (%d attempt(s))", job_id, url, attempts, extra={"job_id": job_id})
    _record(job_id, webhook_state="delivered", webhook_attempts=attempts, webhook_error=None,
            webhook_delivered_at=utcnow())
    return "delivered"


def _send_logged(job_id: str, claimed: dict[str, Any]) -> None:
    try:
        _send(job_id, claimed)
    except Exception:
        logger.exception("job %s: webhook delivery crashed", job_id, extra={"job_id": job_id})


def deliver_due(limit: int = 50) -> int:
    """Start deliveries for finished jobs whose webhook is still pending, whichever path ended
    them (e.g. the sweeper timing chunks out); the periodic safety net. Returns how many."""
    with session_scope() as session:
        due = list(session.scalars(
            select(Job.id).where(Job.webhook_state == "pending", Job.state.in_(FINAL_STATES)).limit(limit)
        ))
    return sum(deliver_in_background(job_id) is not None for job_id in due)


def deliver_in_background(job_id: str) -> threading.Thread | None:
    """Claim the webhook now (one UPDATE); if it is due, send it on a thread so retries never
    hold up a worker's next chunk or an API request.

    Not a daemon thread: a worker asked to stop still finishes a delivery in progress.
    """
    try:
        claimed = _claim(job_id)
    except Exception:
        # The job's results are committed; a webhook must never make the chunk fail or retry.
        logger.exception("job %s: could not check the webhook", job_id, extra={"job_id": job_id})
        return None
    if claimed is None:
        return None
    thread = threading.Thread(target=_send_logged, args=(job_id, claimed), name=f"webhook-{job_id}")
    thread.start()
    return thread
