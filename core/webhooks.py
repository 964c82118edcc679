"""Completion webhooks over HTTP: check callback URLs, sign payloads (HMAC-SHA256), POST with retries.

Who sends when, once, is the outbox's business (db.webhooks); nothing here touches the database.
"""

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from imagebatch.core import netguard
from imagebatch.core.config import settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Imagebatch-Signature"
TIMESTAMP_HEADER = "X-Imagebatch-Timestamp"
EVENT = "job.finished"
# Seconds between attempts grow 1, 2, 4, ... up to this.
_MAX_BACKOFF = 60.0
_BACKOFF_BASE = 1.0
_NO_SECRET = (
    "not sent: IMAGEBATCH_WEBHOOK_SECRET is not set, and a signature made with an empty key could be "
    "forged by anyone; set it on the workers and the API"
)


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
    if not url.lower().startswith(("http://", "https://")):
        raise UnsafeUrl(f"must be an http:// or https:// URL (got {url!r})")
    try:
        target = netguard.parse_http_url(url)  # as an image URL: both parsers must read it alike
    except netguard.InvalidUrl as exc:
        raise UnsafeUrl(f"{url!r} {exc}") from exc
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials; the payload is signed instead")
    allow_private = settings.ALLOW_PRIVATE_URLS
    try:
        netguard.check_host_name(target.host, allow_private=allow_private)
        netguard.resolve_public(target.host, target.port, allow_private=allow_private)
    except (netguard.BlockedAddress, OSError) as exc:
        raise UnsafeUrl(str(exc)) from exc
    return url


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """'sha256=' + hex HMAC-SHA256 of '<timestamp>.<body>' (the timestamp defeats replays)."""
    if not secret:
        raise ValueError("refusing to sign a webhook with an empty key (IMAGEBATCH_WEBHOOK_SECRET is not set)")
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does: constant-time comparison of the signature header."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


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


@dataclass(frozen=True)
class Delivery:
    """How a delivery ended: `error` is None when the receiver accepted it."""

    attempts: int
    error: str | None = None


def delivery_lease() -> float:
    """Seconds a delivery may take at most: every attempt timing out (connect and read) plus
    the backoff between attempts, with a margin. A delivery claimed longer ago than this and
    never recorded belongs to a process that died, and is claimed again."""
    attempts = settings.WEBHOOK_MAX_ATTEMPTS
    backoff = sum(min(_BACKOFF_BASE * 2**i, _MAX_BACKOFF) for i in range(attempts - 1))
    return attempts * 2 * settings.WEBHOOK_TIMEOUT + backoff + 60.0


def deliver(url: str, payload: dict[str, Any], job_id: str) -> Delivery:
    """POST the signed payload to `url` with retries; never raises for the receiver's failures."""
    if not settings.WEBHOOK_SECRET:
        # Submission refuses callbacks without a secret; a job stored before that (or a secret
        # removed since) fails its delivery instead of sending a signature anyone could forge.
        logger.warning("job %s: webhook not sent: %s", job_id, _NO_SECRET, extra={"job_id": job_id})
        return Delivery(0, _NO_SECRET)
    body = json.dumps(payload, separators=(",", ":")).encode()
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
        logger.warning(
            "job %s: webhook to %s failed after %d attempt(s): %s",
            job_id,
            url,
            attempts,
            cause,
            extra={"job_id": job_id},
        )
        return Delivery(attempts, str(cause) or type(cause).__name__)
    logger.info("job %s: webhook delivered to %s (%d attempt(s))", job_id, url, attempts, extra={"job_id": job_id})
    return Delivery(attempts)
