"""Training-job transitions on SQLite and PostgreSQL: claims under a lease, heartbeats, cancel, the sweep."""

from datetime import timedelta

from imagebatch.db import lifecycle
from imagebatch.db.lifecycle import Claim
from imagebatch.db.models import TrainingJob, utcnow
from tests.db.helpers import Sessions, add_training

LEASE = 30.0


def claim(db: Sessions, job_id: str = "t1", by: str = "run-a", now=None, max_attempts: int = 3) -> Claim:
    with db.begin() as session:
        return lifecycle.claim_training(
            session=session, job_id=job_id, claimed_by=by, lease=LEASE, max_attempts=max_attempts, now=now
        )


def job(db: Sessions, job_id: str = "t1") -> TrainingJob:
    with db() as session:
        return session.get(TrainingJob, job_id)


def test_a_queued_job_is_claimed_once_and_a_live_lease_keeps_others_out(db):
    add_training(db)
    assert claim(db, by="run-a") is Claim.CLAIMED
    assert claim(db, by="run-b") is Claim.BUSY
    row = job(db)
    assert (row.state, row.claimed_by, row.attempts) == ("running", "run-a", 1)
    assert row.running_at is not None and row.lease_until is not None


def test_a_lapsed_lease_lets_another_run_resume_and_the_first_loses_its_writes(db):
    add_training(db)
    claim(db, by="run-a")
    later = utcnow() + timedelta(seconds=LEASE + 1)
    assert claim(db, by="run-b", now=later) is Claim.CLAIMED
    with db.begin() as session:
        assert lifecycle.renew_training_lease(session=session, job_id="t1", claimed_by="run-a", lease=LEASE) is None
        assert not lifecycle.record_training_progress(session=session, job_id="t1", claimed_by="run-a", progress=0.5)
        assert lifecycle.record_training_progress(session=session, job_id="t1", claimed_by="run-b", progress=0.5)
    row = job(db)
    assert (row.claimed_by, row.attempts, row.progress) == ("run-b", 2, 0.5)


def test_heartbeats_report_a_cancel_and_the_holder_finishes_it(db):
    add_training(db)
    claim(db)
    with db.begin() as session:
        assert (
            lifecycle.renew_training_lease(session=session, job_id="t1", claimed_by="run-a", lease=LEASE) == "running"
        )
        assert lifecycle.request_training_cancel(session=session, job_id="t1") == "cancelling"
        assert lifecycle.renew_training_lease(session=session, job_id="t1", claimed_by="run-a", lease=LEASE) == (
            "cancelling"
        )
        # Once cancelling, nothing may complete (and register) any more.
        assert not lifecycle.complete_training(session=session, job_id="t1", claimed_by="run-a", model_version=1)
        assert lifecycle.finish_training_cancel(session=session, job_id="t1", claimed_by="run-a")
    row = job(db)
    assert row.state == "cancelled" and row.model_version is None and row.cancelled_at is not None


def test_a_queued_job_cancels_at_once_and_cannot_be_claimed(db):
    add_training(db)
    with db.begin() as session:
        assert lifecycle.request_training_cancel(session=session, job_id="t1") == "cancelled"
        assert lifecycle.request_training_cancel(session=session, job_id="t1") is None
    assert claim(db) is Claim.GONE


def test_completion_records_the_version_and_releases_the_claim(db):
    add_training(db)
    claim(db)
    with db.begin() as session:
        done = lifecycle.complete_training(
            session=session, job_id="t1", claimed_by="run-a", model_version=2, epochs=[{"epoch": 1}]
        )
        assert done
        assert not lifecycle.fail_training(session=session, job_id="t1", message="too late")
    row = job(db)
    assert (row.state, row.model_version, row.progress, row.claimed_by) == ("completed", 2, 1.0, None)
    assert row.epochs == [{"epoch": 1}]


def test_a_job_claimed_max_attempts_times_fails_instead_of_looping(db):
    add_training(db)
    now = utcnow()
    for attempt in range(2):
        assert claim(db, by=f"run-{attempt}", now=now, max_attempts=2) is Claim.CLAIMED
        now += timedelta(seconds=LEASE + 1)
    assert claim(db, by="run-2", now=now, max_attempts=2) is Claim.EXHAUSTED
    row = job(db)
    assert row.state == "failed" and "claimed 2 times" in row.error


def test_the_sweep_resends_a_lapsed_job_once_and_cancels_an_abandoned_cancel(db):
    add_training(db, "t1")
    add_training(db, "t2")
    claim(db, "t1")
    claim(db, "t2", by="run-c")
    with db.begin() as session:
        lifecycle.request_training_cancel(session=session, job_id="t2")
    later = utcnow() + timedelta(seconds=LEASE + 1)
    sent: list[str] = []
    for _ in range(2):  # a second sweeper right after finds nothing to do
        with db.begin() as session:
            lifecycle.sweep_training(session=session, send=sent.append, lease=LEASE, grace=60, idle=60, now=later)
    assert sent == ["t1"]
    assert (job(db, "t1").state, job(db, "t1").claimed_by) == ("running", None)
    assert job(db, "t2").state == "cancelled"
    assert claim(db, "t1", by="run-b", now=later) is Claim.CLAIMED  # released: claimable before the new lease ends


def test_the_sweep_sends_a_job_whose_api_died_before_sending_it(db):
    add_training(db)
    sent: list[str] = []
    with db.begin() as session:
        lifecycle.sweep_training(session=session, send=sent.append, lease=LEASE, grace=60, idle=60)
    assert sent == []  # within the grace period its API may still be sending it
    later = utcnow() + timedelta(seconds=61)
    with db.begin() as session:
        lifecycle.sweep_training(session=session, send=sent.append, lease=LEASE, grace=60, idle=60, now=later)
    assert sent == ["t1"] and job(db).enqueued_at is not None


def test_a_lost_message_is_resent_only_while_the_training_queue_is_empty(db):
    add_training(db)
    with db.begin() as session:
        lifecycle.mark_training_enqueued(session=session, job_id="t1")
    later, sent = utcnow() + timedelta(seconds=61), []
    for empty in (False, True, True):
        with db.begin() as session:
            lifecycle.sweep_training(
                session=session,
                send=sent.append,
                lease=LEASE,
                grace=60,
                idle=60,
                queue_empty=lambda e=empty: e,
                now=later,
            )
    assert sent == ["t1"]  # once: the renewed enqueued_at is the next sweeper's lease
