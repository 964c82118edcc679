"""Worker liveness on SQLite and PostgreSQL: heartbeats, silent workers' chunks requeued, stopping ones' handed back."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from imagebatch.core.chunks import Chunk
from imagebatch.db import lifecycle
from imagebatch.db.models import Image, WorkerProcess, utcnow
from tests.db.helpers import add_job, job_of, statuses

DEAD_AFTER = 15


def _claim(db, job_id: str, start: int, stop: int, worker: str, by: str = "task") -> None:
    with db.begin() as session:
        assert lifecycle.claim_chunk(
            session=session, job_id=job_id, start=start, stop=stop, claimed_by=by, worker=worker
        )


def _beat(db, worker: str, ago: float = 0) -> None:
    with db.begin() as session:
        lifecycle.beat(session=session, worker_id=worker, hostname="host", pid=1, now=utcnow() - timedelta(seconds=ago))


def _sweep(db, sent: list, **options) -> lifecycle.SweepReport:
    options = {"deadline": 900, "max_attempts": 3, "grace": 30, "orphan_after": 600, "dead_after": DEAD_AFTER} | options
    with db.begin() as session:
        return lifecycle.sweep(session=session, send=sent.extend, **options)


def _workers(db) -> list[str]:
    with db() as session:
        return list(session.scalars(select(WorkerProcess.id).order_by(WorkerProcess.id)))


def test_beat_inserts_once_then_renews(db):
    _beat(db, "w1", ago=100)
    _beat(db, "w1")
    with db() as session:
        rows = session.scalars(select(WorkerProcess)).all()
    assert [row.id for row in rows] == ["w1"]
    assert utcnow() - rows[0].seen_at.replace(tzinfo=utcnow().tzinfo) < timedelta(seconds=10)


def test_a_silent_workers_chunk_is_requeued_and_a_live_ones_is_left(db):
    add_job(db, "j", total=8)
    _beat(db, "dead", ago=DEAD_AFTER + 5)
    _beat(db, "alive")
    _claim(db, "j", 0, 4, "dead", by="t1")
    _claim(db, "j", 4, 8, "alive", by="t2")
    sent: list = []
    report = _sweep(db, sent)
    assert sent == [Chunk("j", "resnet18", 0, 4, 0)]
    assert report.requeued == [("j", 0, 4)]
    assert statuses(db, "j") == ["pending"] * 4 + ["running"] * 4
    assert _workers(db) == ["alive"]  # the silent worker, holding nothing now, is forgotten
    with db() as session:
        assert session.scalars(select(Image.claimed_worker).where(Image.idx < 4)).all() == [None] * 4
    # A second sweep finds nothing: exactly one sweeper wins each row.
    again: list = []
    _sweep(db, again)
    assert again == []


def _enqueued(db, job_id: str) -> None:
    with db.begin() as session:
        assert lifecycle.mark_enqueued(session=session, job_id=job_id, now=utcnow() - timedelta(seconds=1))


@pytest.mark.parametrize("queue_empty", [True, False])
def test_a_dead_worker_has_pending_chunks_behind_an_empty_queue_resent_without_waiting(db, queue_empty):
    # The job runs on a live worker (claimed a moment ago, so not idle); rows 4-8 are pending, their
    # message fetched by the worker that then died before claiming them.
    add_job(db, "j", total=12)
    _enqueued(db, "j")
    _beat(db, "dead", ago=DEAD_AFTER + 5)
    _beat(db, "alive")
    _claim(db, "j", 0, 4, "alive")
    sent: list = []
    report = _sweep(db, sent, queue_empty=lambda model: queue_empty)
    assert report.dead_workers == 1 and _workers(db) == ["alive"]
    if queue_empty:
        assert sent == [Chunk("j", "resnet18", 4, 8, 0), Chunk("j", "resnet18", 8, 12, 0)]
        assert report.requeued == [("j", 4, 8), ("j", 8, 12)]
    else:  # a message may still wait in the queue for those rows: the idle rule decides later
        assert sent == []
    assert statuses(db, "j") == ["running"] * 4 + ["pending"] * 8
    # Without a death the same job is left to the idle rule (orphan_after): nothing is resent.
    again: list = []
    assert _sweep(db, again, queue_empty=lambda model: True).dead_workers == 0
    assert again == []


def test_a_worker_with_no_heartbeat_row_counts_as_dead_and_rows_naming_no_worker_wait_for_the_deadline(db):
    add_job(db, "j", total=8)
    _claim(db, "j", 0, 4, "never-beat")
    with db.begin() as session:
        lifecycle.claim_chunk(session=session, job_id="j", start=4, stop=8, claimed_by="old")  # before 0009
    sent: list = []
    _sweep(db, sent)
    assert sent == [Chunk("j", "resnet18", 0, 4, 0)]
    assert statuses(db, "j") == ["pending"] * 4 + ["running"] * 4


def test_a_silent_workers_rows_out_of_attempts_time_out(db):
    add_job(db, "j", total=4)
    for attempt in range(3):
        _claim(db, "j", 0, 4, f"w{attempt}")
        _sweep(db, [])
    assert statuses(db, "j") == ["error"] * 4
    assert job_of(db, "j").state == "completed"


def test_a_cancel_while_a_dead_workers_chunk_waits_ends_cancelled(db):
    add_job(db, "j", total=8)
    _claim(db, "j", 0, 4, "dead")
    with db.begin() as session:
        assert lifecycle.request_cancel(session=session, job_id="j") == "cancelling"
    sent: list = []
    _sweep(db, sent)
    assert sent == []
    assert statuses(db, "j") == ["cancelled"] * 8
    assert job_of(db, "j").state == "cancelled"


def test_retire_hands_back_the_workers_rows_uncounted_and_removes_its_heartbeat(db):
    add_job(db, "j", total=12)
    _beat(db, "stopping")
    _beat(db, "other")
    _claim(db, "j", 0, 4, "stopping")
    _claim(db, "j", 4, 8, "stopping")
    _claim(db, "j", 8, 12, "other")
    with db.begin() as session:
        chunks = lifecycle.retire_worker(session=session, worker_id="stopping")
    assert chunks == [Chunk("j", "resnet18", 0, 4, 0), Chunk("j", "resnet18", 4, 8, 0)]
    assert statuses(db, "j") == ["pending"] * 8 + ["running"] * 4
    with db() as session:
        assert set(session.scalars(select(Image.attempts))) == {0, 1}  # handed back: not an attempt
    assert _workers(db) == ["other"]
