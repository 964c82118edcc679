"""Chunk transitions on SQLite and PostgreSQL: claims, result writes, give-ups, releases, requeues."""

from datetime import timedelta

from sqlalchemy import select, update

from imagebatch.core import errors
from imagebatch.db import lifecycle
from imagebatch.db.models import Image, utcnow
from tests.db.helpers import add_job, claim, job_of, ok_rows, statuses


def _rows(db, job_id: str) -> list:
    with db() as session:
        return session.execute(
            select(Image.idx, Image.status, Image.attempts, Image.claimed_by, Image.error_category, Image.top1_label)
            .where(Image.job_id == job_id)
            .order_by(Image.idx)
        ).all()


def test_a_claim_takes_the_chunks_pending_rows_for_its_delivery_in_index_order(db):
    add_job(db, "c", total=6)
    claimed = claim(db, "c", 4, 8, by="task-1")
    assert [(image.idx, image.source, image.location) for image in claimed] == [
        (4, "img4.jpg", "file:/nowhere/img4.jpg"),
        (5, "img5.jpg", "file:/nowhere/img5.jpg"),
    ]
    rows = _rows(db, "c")
    assert [(r.status, r.attempts, r.claimed_by) for r in rows[4:]] == [("running", 1, "task-1")] * 2
    assert [r.status for r in rows[:4]] == ["pending"] * 4


def test_another_delivery_finds_the_rows_held_and_the_same_delivery_takes_them_back(db):
    add_job(db, "held", total=4)
    assert len(claim(db, "held", 0, 4, by="task-1")) == 4
    assert claim(db, "held", 0, 4, by="task-2") == []  # a duplicate message of the chunk
    again = claim(db, "held", 0, 4, by="task-1")  # the broker redelivered task-1 after its worker died
    assert len(again) == 4
    assert {(r.attempts, r.claimed_by) for r in _rows(db, "held")} == {(2, "task-1")}


def test_a_claim_is_refused_for_a_cancelled_failed_finished_or_missing_job(db):
    add_job(db, "cancelled", total=4)
    with db.begin() as session:
        lifecycle.request_cancel(session=session, job_id="cancelled")
    assert claim(db, "cancelled", 0, 4) is None
    assert job_of(db, "cancelled").state == "cancelled" and statuses(db, "cancelled") == ["cancelled"] * 4
    add_job(db, "failed", total=4)
    with db.begin() as session:
        lifecycle.fail_job(session=session, job_id="failed", message="no weights")
    assert claim(db, "failed", 0, 4) is None and statuses(db, "failed") == ["error"] * 4
    assert claim(db, "missing", 0, 4) is None


def test_a_chunk_of_a_cancelling_job_cancels_its_pending_rows_and_its_own_but_not_anothers(db):
    add_job(db, "stop", total=8)
    claim(db, "stop", 0, 4, by="task-1")
    claim(db, "stop", 4, 8, by="task-2")
    with db.begin() as session:
        lifecycle.request_cancel(session=session, job_id="stop")
    assert claim(db, "stop", 0, 4, by="task-1") is None  # task-1 redelivered: gives its rows up
    assert statuses(db, "stop") == ["cancelled"] * 4 + ["running"] * 4  # task-2 still finishes its own
    with db.begin() as session:
        assert lifecycle.cancel_chunk(session=session, job_id="stop", start=4, stop=8, claimed_by="task-9") == 0


def test_results_are_written_only_to_rows_still_running(db):
    add_job(db, "late", total=8)
    first = claim(db, "late", 0, 4, by="task-1")
    second = claim(db, "late", 4, 8, by="task-2")
    with db.begin() as session:  # meanwhile: task-1's chunk given up, task-2's rows requeued
        lifecycle.fail_chunk(session=session, job_id="late", start=0, stop=4, message="gave up")
        lifecycle.requeue_stale_chunk(
            session=session, job_id="late", start=4, stop=8, cutoff=utcnow() + timedelta(seconds=1)
        )
    with db.begin() as session:  # the late workers write anyway
        lifecycle.write_chunk_results(session=session, rows=ok_rows(first) + ok_rows(second))
    rows = _rows(db, "late")
    assert [(r.status, r.error_category, r.top1_label) for r in rows[:4]] == [("error", errors.INTERNAL, None)] * 4
    assert [(r.status, r.top1_label) for r in rows[4:]] == [("pending", None)] * 4
    third = claim(db, "late", 4, 8, by="task-3")
    with db.begin() as session:
        lifecycle.write_chunk_results(session=session, rows=ok_rows(third, label="lynx"))
        lifecycle.write_chunk_results(session=session, rows=ok_rows(second, label="stale"))  # finished: refused
    assert [(r.status, r.top1_label) for r in _rows(db, "late")[4:]] == [("ok", "lynx")] * 4


def test_after_max_attempts_the_deliverys_running_rows_are_given_up_as_timed_out(db):
    add_job(db, "poison", total=4)
    for _ in range(3):
        claim(db, "poison", 0, 4, by="task-1")
    chunk = {"job_id": "poison", "start": 0, "stop": 4}
    with db.begin() as session:
        assert lifecycle.give_up_exhausted(session=session, **chunk, max_attempts=4) == 0
        assert lifecycle.give_up_exhausted(session=session, **chunk, max_attempts=3, claimed_by="task-2") == 0
        assert lifecycle.give_up_exhausted(session=session, **chunk, max_attempts=3, claimed_by="task-1") == 4
        assert lifecycle.give_up_exhausted(session=session, **chunk, max_attempts=3) == 0  # nothing running left
    assert {(r.status, r.error_category, r.attempts) for r in _rows(db, "poison")} == {("error", errors.TIMED_OUT, 3)}


def test_a_released_claim_is_pending_again_without_the_attempt_and_only_its_holder_releases_it(db):
    add_job(db, "rel", total=4)
    claim(db, "rel", 0, 4, by="task-1")
    chunk = {"job_id": "rel", "start": 0, "stop": 4}
    with db.begin() as session:
        assert lifecycle.release_claim(session=session, **chunk, claimed_by="task-2") == 0
        assert lifecycle.release_claim(session=session, **chunk, claimed_by="task-1") == 4
        assert lifecycle.release_claim(session=session, **chunk, claimed_by="task-1") == 0
    assert {(r.status, r.attempts, r.claimed_by) for r in _rows(db, "rel")} == {("pending", 0, None)}
    assert len(claim(db, "rel", 0, 4, by="task-2")) == 4


def test_a_chunk_out_of_retries_fails_its_open_rows_and_leaves_finished_ones(db):
    add_job(db, "gone", total=4)
    claimed = claim(db, "gone", 0, 2)
    with db.begin() as session:
        lifecycle.write_chunk_results(session=session, rows=ok_rows(claimed[:1]))
        assert lifecycle.fail_chunk(session=session, job_id="gone", start=0, stop=4, message="x" * 3000) == 3
    rows = _rows(db, "gone")
    assert [r.status for r in rows] == ["ok", "error", "error", "error"]
    with db() as session:
        assert len(session.scalar(select(Image.error_message).where(Image.job_id == "gone", Image.idx == 3))) == 2000


def test_only_rows_claimed_before_the_cutoff_are_requeued_and_only_once(db):
    add_job(db, "stale", total=8)
    claim(db, "stale", 0, 4)
    claim(db, "stale", 4, 8)
    with db.begin() as session:
        session.execute(
            update(Image)
            .where(Image.job_id == "stale", Image.idx < 4)
            .values(claimed_at=utcnow() - timedelta(seconds=120))
        )
    cutoff = utcnow() - timedelta(seconds=60)
    with db.begin() as session:
        assert lifecycle.requeue_stale_chunk(session=session, job_id="stale", start=0, stop=4, cutoff=cutoff) == 4
        assert lifecycle.requeue_stale_chunk(session=session, job_id="stale", start=0, stop=4, cutoff=cutoff) == 0
        assert lifecycle.requeue_stale_chunk(session=session, job_id="stale", start=4, stop=8, cutoff=cutoff) == 0
    rows = _rows(db, "stale")
    assert [(r.status, r.claimed_by) for r in rows[:4]] == [("pending", None)] * 4
    assert [r.status for r in rows[4:]] == ["running"] * 4
