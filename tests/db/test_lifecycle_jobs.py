"""Job transitions on SQLite and PostgreSQL: each one happens from the states that allow it, and only then."""

from datetime import timedelta

from imagebatch.core import errors
from imagebatch.db import lifecycle
from imagebatch.db.models import utcnow
from tests.db.helpers import add_job, claim, finish, job_of, statuses


def test_a_new_job_is_queued_with_a_pending_row_per_image_and_its_submission_details(db):
    add_job(
        db,
        "new",
        total=3,
        skipped=[{"source": "notes.md", "reason": "not an image"}],
        tenant="acme",
        idempotency_key="k" * 64,
        callback_url="https://example.com/hook",
    )
    job = job_of(db, "new")
    assert (job.state, job.total, job.chunk_size, job.tenant, job.idempotency_key) == ("queued", 3, 4, "acme", "k" * 64)
    assert job.queued_at is not None and job.running_at is None and job.enqueued_at is None
    assert (job.callback_url, job.webhook_state, job.webhook_attempts) == ("https://example.com/hook", "pending", 0)
    assert job.skipped == [{"source": "notes.md", "reason": "not an image"}]
    assert statuses(db, "new") == ["pending"] * 3
    add_job(db, "plain", total=1)
    assert job_of(db, "plain").webhook_state is None and job_of(db, "plain").skipped is None


def test_queued_running_completed_and_finalize_refuses_while_rows_are_open(db):
    add_job(db, "j", total=10, chunk_size=4)
    first = claim(db, "j", 0, 4)
    job = job_of(db, "j")
    assert job.state == "running" and job.running_at is not None
    assert [image.idx for image in first] == [0, 1, 2, 3]
    assert finish(db, "j", first) is None  # chunks [4, 8) and [8, 10) still pending
    assert job_of(db, "j").state == "running"
    assert finish(db, "j", claim(db, "j", 4, 8)) is None
    assert finish(db, "j", claim(db, "j", 8, 10)) == "completed"
    job = job_of(db, "j")
    assert job.state == "completed" and job.completed_at is not None
    assert statuses(db, "j") == ["ok"] * 10
    with db.begin() as session:  # closing twice: refused
        assert lifecycle.finalize_job(session=session, job_id="j") is None
        assert lifecycle.finalize_idle_jobs(session=session) == 0


def test_failing_a_job_turns_its_open_rows_into_errors_and_is_refused_once_it_ended(db):
    add_job(db, "f", total=6)
    finish(db, "f", claim(db, "f", 0, 4))  # two rows stay pending
    with db.begin() as session:
        assert lifecycle.fail_job(session=session, job_id="f", message="weights missing")
    job = job_of(db, "f")
    assert (job.state, job.error) == ("failed", "weights missing") and job.failed_at is not None
    assert statuses(db, "f") == ["ok"] * 4 + ["error"] * 2
    with db.begin() as session:
        assert not lifecycle.fail_job(session=session, job_id="f", message="again")
        assert lifecycle.finalize_job(session=session, job_id="f") is None
    assert job_of(db, "f").error == "weights missing"


def test_cancelling_a_running_job_waits_for_its_running_chunk_then_it_is_cancelled(db):
    add_job(db, "c", total=8)
    running = claim(db, "c", 0, 4)
    with db.begin() as session:
        assert lifecycle.request_cancel(session=session, job_id="c") == "cancelling"
    job = job_of(db, "c")
    assert job.state == "cancelling" and job.cancelling_at is not None
    assert statuses(db, "c") == ["running"] * 4 + ["cancelled"] * 4
    assert claim(db, "c", 4, 8, by="task-2") is None  # a chunk of a cancelling job does not run
    assert finish(db, "c", running) == "cancelled"  # the running chunk finishes and closes the job
    job = job_of(db, "c")
    assert job.state == "cancelled" and job.cancelled_at is not None
    assert statuses(db, "c") == ["ok"] * 4 + ["cancelled"] * 4


def test_cancelling_a_queued_job_cancels_it_at_once_and_an_ended_job_is_refused(db):
    add_job(db, "q", total=5)
    with db.begin() as session:
        assert lifecycle.request_cancel(session=session, job_id="q") == "cancelled"
    assert job_of(db, "q").state == "cancelled" and statuses(db, "q") == ["cancelled"] * 5
    with db.begin() as session:
        assert lifecycle.request_cancel(session=session, job_id="q") is None
        assert lifecycle.request_cancel(session=session, job_id="missing") is None
        assert not lifecycle.fail_job(session=session, job_id="q", message="too late")
    assert job_of(db, "q").state == "cancelled"


def test_deleting_a_job_removes_it_and_its_rows(db):
    add_job(db, "d", total=3)
    add_job(db, "kept", total=2)
    with db.begin() as session:
        assert lifecycle.delete_job(session=session, job_id="d")
    with db.begin() as session:
        assert not lifecycle.delete_job(session=session, job_id="d")
    assert job_of(db, "d") is None and statuses(db, "d") == []
    assert statuses(db, "kept") == ["pending"] * 2


def test_the_first_reproducibility_record_stays(db):
    add_job(db, "r", total=1)
    with db.begin() as session:
        assert lifecycle.record_reproducibility(session=session, job_id="r", record={"weights_sha256": "a"})
        assert not lifecycle.record_reproducibility(session=session, job_id="r", record={"weights_sha256": "b"})
    assert job_of(db, "r").reproducibility == {"weights_sha256": "a"}


def test_the_enqueue_mark_is_won_once_and_renewed_only_from_the_time_seen(db):
    add_job(db, "e", total=4)
    now = utcnow()
    with db.begin() as session:
        assert lifecycle.mark_enqueued(session=session, job_id="e", now=now)
        assert not lifecycle.mark_enqueued(session=session, job_id="e")
    seen = job_of(db, "e").enqueued_at
    later = now + timedelta(seconds=60)
    with db.begin() as session:
        assert lifecycle.renew_enqueued(session=session, job_id="e", seen=seen, now=later)
    with db.begin() as session:  # a second sweeper that saw the old time loses the lease
        assert not lifecycle.renew_enqueued(session=session, job_id="e", seen=seen, now=later + timedelta(seconds=1))


def test_idle_jobs_with_nothing_open_are_closed_by_the_sweep_step(db):
    add_job(db, "idle", total=4)
    rows = claim(db, "idle", 0, 4)
    with db.begin() as session:  # results committed, but the finalize after them never ran
        lifecycle.write_chunk_results(
            session=session, rows=[{"id": r.id, "status": "error", "error_category": errors.UNREADABLE} for r in rows]
        )
    add_job(db, "busy", total=4)
    with db.begin() as session:
        assert lifecycle.finalize_idle_jobs(session=session) == 1
    assert job_of(db, "idle").state == "completed" and job_of(db, "busy").state == "queued"
