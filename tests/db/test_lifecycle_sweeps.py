"""The sweeper's pass on SQLite and PostgreSQL: what it resends, in one batch, and what it leaves."""

from datetime import timedelta

from sqlalchemy import update

from imagebatch.core.chunks import Chunk
from imagebatch.db import lifecycle
from imagebatch.db.models import Image, Job, utcnow
from tests.db.helpers import add_job, claim, job_of, statuses


class Sent:
    def __init__(self) -> None:
        self.batches: list[list[Chunk]] = []

    def __call__(self, chunks) -> None:
        self.batches.append(list(chunks))


def _sweep(db, send: Sent, **options) -> lifecycle.SweepReport:
    options = {"deadline": 60, "max_attempts": 3, "grace": 30, "orphan_after": 60} | options
    with db.begin() as session:
        return lifecycle.sweep(session=session, send=send, **options)


def _age(db, job_id: str, *, created: float = 0, enqueued: float | None = None, claimed: float | None = None) -> None:
    now = utcnow()
    with db.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                created_at=now - timedelta(seconds=created),
                enqueued_at=None if enqueued is None else now - timedelta(seconds=enqueued),
            )
        )
        if claimed is not None:
            session.execute(
                update(Image)
                .where(Image.job_id == job_id, Image.status == "running")
                .values(claimed_at=now - timedelta(seconds=claimed))
            )


def test_one_pass_resends_stale_abandoned_and_orphaned_chunks_in_one_batch(db):
    add_job(db, "stale", total=8)
    claim(db, "stale", 0, 4)
    _age(db, "stale", created=300, enqueued=300, claimed=120)
    add_job(db, "abandoned", total=6)
    _age(db, "abandoned", created=100)
    add_job(db, "orphan", total=4)
    _age(db, "orphan", created=300, enqueued=300)
    send = Sent()
    report = _sweep(db, send, queue_empty=lambda model: True)
    assert len(send.batches) == 1 and len(send.batches[0]) == 5  # each chunk once
    assert set(send.batches[0]) == {
        Chunk("stale", "resnet18", 0, 4, 0),  # resent: first in line
        Chunk("stale", "resnet18", 4, 8, 0),  # pending and idle as well: resent with it
        Chunk("abandoned", "resnet18", 0, 4, 0),
        Chunk("abandoned", "resnet18", 4, 6, 0),  # first send
        Chunk("orphan", "resnet18", 0, 4, 0),
    }
    assert report.enqueued_jobs == ["abandoned"] and ("stale", 0, 4) in report.requeued
    assert statuses(db, "stale") == ["pending"] * 8
    again = Sent()
    _sweep(db, again, queue_empty=lambda model: True)
    assert again.batches == []  # every lease renewed or won: nothing twice


def test_a_fresh_claim_a_young_submission_and_a_busy_queue_are_left_alone(db):
    add_job(db, "fresh", total=4)
    claim(db, "fresh", 0, 4)
    _age(db, "fresh", created=300, enqueued=300, claimed=5)
    add_job(db, "young", total=4)
    _age(db, "young", created=5)
    send = Sent()
    report = _sweep(db, send, queue_empty=lambda model: False)
    assert send.batches == [] and report.requeued == [] and report.enqueued_jobs == []
    assert statuses(db, "fresh") == ["running"] * 4


def test_exhausted_stale_rows_time_out_and_the_job_is_closed_in_the_same_pass(db):
    add_job(db, "tired", total=4)
    for _ in range(3):
        claim(db, "tired", 0, 4)
    _age(db, "tired", created=300, enqueued=300, claimed=120)
    send = Sent()
    report = _sweep(db, send)
    assert report.timed_out == 4 and send.batches == []
    assert job_of(db, "tired").state == "completed"
