"""Completion webhook deliveries: claim in the outbox, POST the job view, record the outcome.

Both the API (a cancel that ends a job at once) and the worker (the chunk that ends a job,
the sweeper's safety net) deliver, and they are siblings that may not import each other;
core/ sits below db/ and may not touch the database. So the orchestration lives here, in db/,
using what each side owns: db.lifecycle.webhooks for the outbox state (the only writer),
db.views for the payload (the job exactly as GET /v1/jobs/{id} shows it), and core.webhooks
for the URL policy, the signature and the HTTP POST with retries.
"""

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from imagebatch.core import webhooks as http
from imagebatch.db.lifecycle.webhooks import claim_webhook, due_webhooks, record_webhook
from imagebatch.db.models import utcnow
from imagebatch.db.session import session_scope
from imagebatch.db.views import JobView, load_job_view

logger = logging.getLogger(__name__)


def _stale_before() -> datetime:
    return utcnow() - timedelta(seconds=http.delivery_lease())


def payload(view: JobView) -> dict[str, Any]:
    """What the receiver gets: the event, the job as GET /v1/jobs/{id} shows it, and when it
    reached its final state (its final state's timestamp: completed, failed or cancelled)."""
    job = view.as_json()
    return {"event": http.EVENT, "job": job, "finished_at": job["timestamps"].get(job["state"])}


def _claim(job_id: str) -> tuple[str, dict[str, Any], datetime] | None:
    """(url, payload, claim time) if this caller took the job's delivery, else None."""
    with session_scope() as session:
        claimed_at = claim_webhook(session=session, job_id=job_id, stale_before=_stale_before())
        if claimed_at is None:
            return None
        view = load_job_view(session, job_id)
        # The claimed row exists (the UPDATE matched it) and a pending delivery has a callback URL.
        assert view is not None and view.webhook is not None
        return view.webhook.url, payload(view), claimed_at


def _send(job_id: str, url: str, body: dict[str, Any], claimed_at: datetime) -> None:
    try:
        outcome = http.deliver(url, body, job_id)
        with session_scope() as session:
            if not record_webhook(
                session=session, job_id=job_id, claimed_at=claimed_at, attempts=outcome.attempts, error=outcome.error
            ):
                logger.warning("job %s: webhook outcome not recorded, its claim was taken again", job_id)
    except Exception:
        logger.exception("job %s: webhook delivery crashed", job_id, extra={"job_id": job_id})


def deliver_in_background(job_id: str) -> threading.Thread | None:
    """Claim the job's webhook now (one UPDATE); if it is due, send it on a thread so retries
    never hold up a worker's next chunk or an API request.

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
    thread = threading.Thread(target=_send, args=(job_id, *claimed), name=f"webhook-{job_id}")
    thread.start()
    return thread


def deliver_due(limit: int = 50) -> int:
    """Start deliveries for finished jobs whose webhook is still pending, whichever path ended
    them (e.g. the sweeper timing chunks out), or left `sending` by a process that died; the
    periodic safety net. Returns how many started."""
    with session_scope() as session:
        due = due_webhooks(session, stale_before=_stale_before(), limit=limit)
    return sum(deliver_in_background(job_id) is not None for job_id in due)
