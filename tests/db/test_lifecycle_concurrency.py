"""Racing callers on PostgreSQL, each thread with its own session and connection: row locks decide."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from imagebatch.core.chunks import Chunk
from imagebatch.db import lifecycle
from imagebatch.db.models import Image, Job, utcnow
from tests.db.helpers import add_job, claim, job_of, ok_rows, statuses

T = TypeVar("T")
THREADS = 8


def race(engine: Engine, count: int, work: Callable[[Session, int], T]) -> list[T]:
    """Run work(session, i) in `count` threads released together, each committing its own session."""
    start = threading.Barrier(count)

    def one(i: int) -> T:
        with Session(engine) as session:
            session.connection()  # connect before the barrier, so the race is in the statements
            start.wait(timeout=30)
            result = work(session, i)
            session.commit()
            return result

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_a_chunk_claimed_by_several_deliveries_at_once_goes_to_exactly_one(pg):
    db = sessionmaker(bind=pg, expire_on_commit=False)
    for round_ in range(5):
        job_id = f"claimed{round_}"
        add_job(db, job_id, total=16, chunk_size=16)
        results = race(
            pg,
            THREADS,
            lambda s, i: lifecycle.claim_chunk(session=s, job_id=job_id, start=0, stop=16, claimed_by=f"task-{i}"),
        )
        winners = [r for r in results if r]
        assert len(winners) == 1 and [image.idx for image in winners[0]] == list(range(16))
        assert all(r == [] for r in results if not r)
        assert statuses(db, job_id) == ["running"] * 16 and job_of(db, job_id).state == "running"


def test_of_several_chunks_finishing_at_once_exactly_one_completes_the_job(pg):
    db = sessionmaker(bind=pg, expire_on_commit=False)
    for round_ in range(3):
        job_id = f"finishing{round_}"
        add_job(db, job_id, total=THREADS * 4, chunk_size=4)
        chunks = [claim(db, job_id, i * 4, i * 4 + 4, by=f"task-{i}") for i in range(THREADS)]
        written = threading.Barrier(THREADS)

        def finish(session: Session, i: int) -> str | None:
            lifecycle.write_chunk_results(session=session, rows=ok_rows(chunks[i]))
            session.commit()  # the chunk's own transaction, then finalization in the next one
            written.wait(timeout=30)
            return lifecycle.finalize_job(session=session, job_id=job_id)

        results = race(pg, THREADS, finish)
        assert results.count("completed") == 1 and results.count(None) == THREADS - 1
        assert job_of(db, job_id).state == "completed" and set(statuses(db, job_id)) == {"ok"}


def test_sweepers_racing_requeue_each_stale_chunk_and_enqueue_each_lost_job_once(pg):
    db = sessionmaker(bind=pg, expire_on_commit=False)
    for j in range(3):
        add_job(db, f"stale{j}", total=12)
        for start in (0, 4, 8):
            claim(db, f"stale{j}", start, start + 4)
    add_job(db, "lost", total=8)
    with db.begin() as session:
        session.execute(update(Image).values(claimed_at=utcnow() - timedelta(seconds=120)))
        session.execute(update(Job).values(created_at=utcnow() - timedelta(seconds=120)))
    sent: list[list[Chunk]] = [[] for _ in range(4)]
    results = race(
        pg,
        4,
        lambda s, i: lifecycle.sweep(
            session=s, send=sent[i].extend, deadline=60, max_attempts=3, grace=30, orphan_after=60
        ),
    )
    chunks = [chunk for batch in sent for chunk in batch]
    expected = {Chunk(f"stale{j}", "resnet18", start, start + 4) for j in range(3) for start in (0, 4, 8)}
    expected |= {Chunk("lost", "resnet18", 0, 4), Chunk("lost", "resnet18", 4, 8)}
    assert sorted(chunks, key=repr) == sorted(expected, key=repr)  # every chunk, none twice
    assert sum(len(r.enqueued_jobs) for r in results) == 1


def test_a_webhook_claimed_by_several_processes_at_once_is_sent_by_one(pg):
    db = sessionmaker(bind=pg, expire_on_commit=False)
    add_job(db, "hook", total=2, callback_url="https://example.com/hook")
    with db.begin() as session:
        lifecycle.request_cancel(session=session, job_id="hook")
    stale_before = utcnow() - timedelta(seconds=300)
    results = race(
        pg, THREADS, lambda s, i: lifecycle.claim_webhook(session=s, job_id="hook", stale_before=stale_before)
    )
    assert sum(r is not None for r in results) == 1


def test_a_claim_racing_a_cancel_never_deadlocks_and_leaves_a_consistent_job(pg):
    db = sessionmaker(bind=pg, expire_on_commit=False)
    for round_ in range(6):
        job_id = f"cancel{round_}"
        add_job(db, job_id, total=8)

        def act(session: Session, i: int):
            if i == 0:
                return lifecycle.request_cancel(session=session, job_id=job_id)
            return lifecycle.claim_chunk(session=session, job_id=job_id, start=0, stop=4, claimed_by="task-1")

        cancelled, claimed = race(pg, 2, act)
        rows = statuses(db, job_id)
        assert rows[4:] == ["cancelled"] * 4
        if claimed:  # the claim went first: its chunk runs on, the job waits for it
            assert cancelled == "cancelling" and rows[:4] == ["running"] * 4
        else:  # the cancel went first: nothing of the job runs
            assert cancelled == "cancelled" and rows[:4] == ["cancelled"] * 4
