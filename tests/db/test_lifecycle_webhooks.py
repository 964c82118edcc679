"""The webhook outbox on SQLite and PostgreSQL: claimed once, recorded against its claim, retaken when left."""

from datetime import timedelta

from imagebatch.db import lifecycle
from imagebatch.db.models import utcnow
from tests.db.helpers import add_job, job_of


def _finished(db, job_id: str, callback: str | None = "https://example.com/hook") -> None:
    add_job(db, job_id, total=2, callback_url=callback)
    with db.begin() as session:
        lifecycle.request_cancel(session=session, job_id=job_id)  # nothing running: cancelled at once


def _claim(db, job_id: str, *, lease: float = 300.0, now=None):
    now = now or utcnow()
    with db.begin() as session:
        return lifecycle.claim_webhook(
            session=session, job_id=job_id, stale_before=now - timedelta(seconds=lease), now=now
        )


def test_only_a_finished_jobs_pending_delivery_is_claimed_and_only_once(db):
    add_job(db, "running", total=2, callback_url="https://example.com/hook")
    assert _claim(db, "running") is None  # not finished yet
    _finished(db, "plain", callback=None)
    assert _claim(db, "plain") is None  # no callback URL
    _finished(db, "done")
    claimed_at = _claim(db, "done")
    assert claimed_at is not None
    job = job_of(db, "done")
    assert job.webhook_state == "sending" and job.webhook_claimed_at is not None
    assert _claim(db, "done") is None  # claimed twice: the second caller loses


def test_the_outcome_is_recorded_against_its_claim_only(db):
    _finished(db, "ok")
    claimed_at = _claim(db, "ok")
    with db.begin() as session:
        assert not lifecycle.record_webhook(
            session=session, job_id="ok", claimed_at=claimed_at - timedelta(seconds=1), attempts=1, error=None
        )
        assert lifecycle.record_webhook(session=session, job_id="ok", claimed_at=claimed_at, attempts=2, error=None)
        assert not lifecycle.record_webhook(
            session=session, job_id="ok", claimed_at=claimed_at, attempts=3, error="late"
        )
    job = job_of(db, "ok")
    assert (job.webhook_state, job.webhook_attempts, job.webhook_error) == ("delivered", 2, None)
    assert job.webhook_delivered_at is not None
    _finished(db, "refused")
    claimed_at = _claim(db, "refused")
    with db.begin() as session:
        assert lifecycle.record_webhook(
            session=session, job_id="refused", claimed_at=claimed_at, attempts=5, error="receiver answered 500" * 100
        )
    job = job_of(db, "refused")
    assert (job.webhook_state, job.webhook_attempts, len(job.webhook_error)) == ("failed", 5, 1000)
    assert _claim(db, "refused") is None and _claim(db, "ok") is None  # never sent again


def test_a_delivery_left_sending_by_a_dead_process_is_claimed_again_after_its_lease(db):
    _finished(db, "left")
    first = _claim(db, "left", now=utcnow() - timedelta(seconds=100))  # its process died mid-delivery
    with db() as session:
        assert lifecycle.due_webhooks(session, stale_before=utcnow() - timedelta(seconds=300), limit=10) == []
        assert lifecycle.due_webhooks(session, stale_before=utcnow() - timedelta(seconds=60), limit=10) == ["left"]
    assert _claim(db, "left", lease=300) is None  # still within its lease
    second = _claim(db, "left", lease=60)
    assert second is not None and second > first
    with db.begin() as session:  # the first claim's outcome, arriving late, is not recorded
        assert not lifecycle.record_webhook(session=session, job_id="left", claimed_at=first, attempts=1, error=None)
        assert lifecycle.record_webhook(session=session, job_id="left", claimed_at=second, attempts=1, error=None)
    assert job_of(db, "left").webhook_state == "delivered"


def test_due_webhooks_lists_finished_pending_ones(db):
    _finished(db, "a")
    _finished(db, "b")
    add_job(db, "active", total=1, callback_url="https://example.com/hook")
    _claim(db, "b")
    with db() as session:
        assert lifecycle.due_webhooks(session, stale_before=utcnow() - timedelta(seconds=60), limit=10) == ["a"]
