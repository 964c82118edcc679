"""The sweeper's rules on a real PostgreSQL: requeue stale chunks, give up, enqueue lost submissions."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from imagebatch.core.chunks import Chunk
from imagebatch.db.lifecycle import ImageSource, claim_chunk, create_job, give_up_exhausted, release_claim, sweep
from imagebatch.db.models import Image, Job, utcnow
from imagebatch.db.session import session_scope


class Recorder:
    """Stands in for core.chunks.send_chunks: (job_id, model, start, stop, priority) of each chunk sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int, int, int]] = []
        self.batches = 0

    def __call__(self, chunks: list[Chunk]) -> None:
        self.batches += 1
        self.sent += [(c.job_id, c.model, c.start, c.stop, c.priority) for c in chunks]


def _job(job_id: str, total: int = 10, *, enqueued: bool = True, age: float = 0.0) -> None:
    with session_scope() as session:
        job = create_job(
            session=session,
            job_id=job_id,
            model="resnet18",
            top_k=5,
            store_probabilities=False,
            precision="auto",
            chunk_size=4,
            images=[ImageSource(f"img{i}.jpg", f"file:/nowhere/img{i}.jpg") for i in range(total)],
        )
        job.created_at = utcnow() - timedelta(seconds=age)
        job.enqueued_at = job.created_at if enqueued else None


def _claim(job_id: str, start: int, stop: int, ago: float, by: str = "task-1") -> None:
    with session_scope() as session:
        assert claim_chunk(session=session, job_id=job_id, start=start, stop=stop, claimed_by=by)
        session.execute(
            update(Image)
            .where(Image.job_id == job_id, Image.idx >= start, Image.idx < stop)
            .values(claimed_at=utcnow() - timedelta(seconds=ago))
        )


def _rows(job_id: str) -> list[tuple[int, str, int, str | None]]:
    with session_scope() as session:
        return session.execute(
            select(Image.idx, Image.status, Image.attempts, Image.error_category)
            .where(Image.job_id == job_id)
            .order_by(Image.idx)
        ).all()


def _sweep(send: Recorder, **kwargs) -> object:
    options = {"deadline": 60, "max_attempts": 3, "grace": 30, "orphan_after": 60} | kwargs
    with session_scope() as session:
        return sweep(session=session, send=send, **options)


@pytest.fixture(autouse=True)
def _db(migrated_pg: str) -> None:
    pass


def test_a_chunk_claimed_before_the_deadline_is_requeued_once_and_a_fresh_one_is_left_alone():
    _job("stale")
    _claim("stale", 0, 4, ago=120)  # its worker died or hung
    _claim("stale", 4, 8, ago=5)  # still within its deadline
    send = Recorder()
    report = _sweep(send)
    assert send.sent == [("stale", "resnet18", 0, 4, 0)]
    assert report.requeued == [("stale", 0, 4)]
    rows = _rows("stale")
    assert [r.status for r in rows[:4]] == ["pending"] * 4 and [r.attempts for r in rows[:4]] == [1] * 4
    assert [r.status for r in rows[4:8]] == ["running"] * 4
    # A second sweeper (another worker) finds nothing left to requeue.
    again = Recorder()
    _sweep(again)
    assert again.sent == []


def test_after_bounded_attempts_the_images_fail_as_timed_out_and_the_job_ends():
    _job("exhausted", total=4)
    for _ in range(3):
        _claim("exhausted", 0, 4, ago=120)
    send = Recorder()
    report = _sweep(send, max_attempts=3)
    assert send.sent == [] and report.timed_out == 4
    rows = _rows("exhausted")
    assert {(r.status, r.error_category, r.attempts) for r in rows} == {("error", "timed_out", 3)}
    with session_scope() as session:
        assert session.get(Job, "exhausted").state == "completed"


def test_a_redelivered_chunk_at_its_attempt_limit_is_given_up_before_the_next_claim():
    _job("poison", total=4)
    for _ in range(2):
        _claim("poison", 0, 4, ago=1)
    poison = {"job_id": "poison", "start": 0, "stop": 4, "claimed_by": "task-1"}  # the same message, redelivered
    with session_scope() as session:
        assert give_up_exhausted(session=session, **poison, max_attempts=3) == 0
        assert len(claim_chunk(session=session, **poison)) == 4
    with session_scope() as session:
        assert give_up_exhausted(session=session, **poison, max_attempts=3) == 4
        assert claim_chunk(session=session, **poison) == []


def test_a_job_committed_but_never_enqueued_is_enqueued_after_the_grace_period_only_once():
    _job("lost", total=10, enqueued=False, age=100)
    _job("young", total=4, enqueued=False, age=1)  # its API may still be sending
    _job("sent", total=4, enqueued=True, age=100)
    send = Recorder()
    report = _sweep(send, grace=30)
    assert report.enqueued_jobs == ["lost"]
    assert send.sent == [("lost", "resnet18", 0, 4, 0), ("lost", "resnet18", 4, 8, 0), ("lost", "resnet18", 8, 10, 0)]
    assert send.batches == 1  # one producer batch for the whole pass
    again = Recorder()
    _sweep(again, grace=30)
    assert again.sent == []


def test_pending_chunks_of_an_idle_job_are_resent_only_when_its_queue_is_empty():
    _job("orphan", total=8, age=200)
    _claim("orphan", 0, 4, ago=150)
    with session_scope() as session:  # the first chunk finished long ago, the second's message was lost
        session.execute(
            update(Image)
            .where(Image.job_id == "orphan", Image.idx < 4)
            .values(status="ok", processed_at=utcnow() - timedelta(seconds=150))
        )
    busy = Recorder()
    _sweep(busy, queue_empty=lambda model: False)
    assert busy.sent == []
    empty = Recorder()
    _sweep(empty, queue_empty=lambda model: True)
    assert empty.sent == [("orphan", "resnet18", 4, 8, 0)]
    again = Recorder()  # enqueued_at renewed: not resent before another idle period passes
    _sweep(again, queue_empty=lambda model: True)
    assert again.sent == []


def test_lost_chunks_are_resent_after_the_orphan_idle_time_long_before_the_chunk_deadline():
    _job("quiet", total=8, age=100)
    _claim("quiet", 0, 4, ago=20)
    with session_scope() as session:  # chunk one finished 20 s ago; chunk two's message was lost
        session.execute(
            update(Image)
            .where(Image.job_id == "quiet", Image.idx < 4)
            .values(status="ok", processed_at=utcnow() - timedelta(seconds=20))
        )
    patient = Recorder()
    _sweep(patient, deadline=900, orphan_after=30, queue_empty=lambda model: True)
    assert patient.sent == []  # idle for 20 s only
    prompt = Recorder()
    _sweep(prompt, deadline=900, orphan_after=15, queue_empty=lambda model: True)
    assert prompt.sent == [("quiet", "resnet18", 4, 8, 0)]


def _statements_per_idle_sweep() -> int:
    """Statements one sweep runs when no job needs anything (queue empty, so every check runs)."""
    from sqlalchemy import event

    from imagebatch.db.session import get_engine

    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        statements.append(statement)

    event.listen(get_engine(), "before_cursor_execute", record)
    try:
        send = Recorder()
        _sweep(send, queue_empty=lambda model: True)
    finally:
        event.remove(get_engine(), "before_cursor_execute", record)
    assert send.sent == []
    return len(statements)


def test_a_sweep_over_busy_jobs_costs_the_same_statements_however_many_there_are():
    def busy(job_id: str) -> None:  # enqueued long ago, a chunk claimed just now
        _job(job_id, total=8, age=200)
        _claim(job_id, 0, 4, ago=5)

    for i in range(2):
        busy(f"busy{i}")
    few = _statements_per_idle_sweep()
    for i in range(2, 8):
        busy(f"busy{i}")
    assert _statements_per_idle_sweep() == few


def test_a_chunk_that_raised_is_released_without_counting_an_attempt():
    _job("raised", total=4)
    _claim("raised", 0, 4, ago=0)
    with session_scope() as session:
        assert release_claim(session=session, job_id="raised", start=0, stop=4, claimed_by="another-task") == 0
        assert release_claim(session=session, job_id="raised", start=0, stop=4, claimed_by="task-1") == 4
    assert {(r.status, r.attempts) for r in _rows("raised")} == {("pending", 0)}


def test_only_connection_failures_are_retried_not_bad_statements():
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    from imagebatch.db.retry import is_connection_error
    from tests.harness.services import free_port

    def failure(url: str, statement: str) -> DBAPIError:
        engine = create_engine(url, connect_args={"connect_timeout": 2} if "postgresql" in url else {})
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        except DBAPIError as exc:
            return exc
        finally:
            engine.dispose()
        raise AssertionError("expected a database error")

    assert is_connection_error(failure(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x", "SELECT 1"))
    assert not is_connection_error(failure("sqlite://", "SELECT * FROM missing_table"))
    from imagebatch.db.session import get_engine

    assert not is_connection_error(
        failure(get_engine().url.render_as_string(hide_password=False), "SELECT * FROM missing_table")
    )
