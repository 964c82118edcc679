"""Helpers for the db tests: make a job, read its rows back, build a chunk's result rows."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imagebatch.db import lifecycle
from imagebatch.db.models import Image, Job

Sessions = sessionmaker[Session]


def add_job(db: Sessions, job_id: str, total: int = 10, chunk_size: int = 4, **options) -> None:
    with db.begin() as session:
        lifecycle.create_job(
            session=session,
            job_id=job_id,
            model="resnet18",
            top_k=5,
            store_probabilities=False,
            precision="fp32",
            chunk_size=chunk_size,
            images=[lifecycle.ImageSource(f"img{i}.jpg", f"file:/nowhere/img{i}.jpg") for i in range(total)],
            **options,
        )


def statuses(db: Sessions, job_id: str) -> list[str]:
    with db() as session:
        return list(session.scalars(select(Image.status).where(Image.job_id == job_id).order_by(Image.idx)))


def job_of(db: Sessions, job_id: str) -> Job | None:
    with db() as session:
        return session.get(Job, job_id)


def ok_rows(claimed: list[lifecycle.ClaimedImage], label: str = "tabby") -> list[dict]:
    """Result rows as the worker's writer builds them (status ok plus result columns)."""
    return [
        {"id": image.id, "status": "ok", "top1_label": label, "confidence": 0.9, "width": 8, "height": 8}
        for image in claimed
    ]


def claim(db: Sessions, job_id: str, start: int, stop: int, by: str = "task-1") -> list[lifecycle.ClaimedImage] | None:
    with db.begin() as session:
        return lifecycle.claim_chunk(session=session, job_id=job_id, start=start, stop=stop, claimed_by=by)


def finish(db: Sessions, job_id: str, claimed: list[lifecycle.ClaimedImage]) -> str | None:
    """A chunk's worker: write its results, then finalize in a transaction of its own."""
    with db.begin() as session:
        lifecycle.write_chunk_results(session=session, rows=ok_rows(claimed))
    with db.begin() as session:
        return lifecycle.finalize_job(session=session, job_id=job_id)


# A training job's options as the API stores them (db tests need only a valid row).
OPTIONS = {"name": "colours", "base_model": "resnet18", "mode": "transfer", "epochs": 3}


def add_training(db: Sessions, job_id: str = "t1", **extra) -> None:
    with db.begin() as session:
        lifecycle.create_training_job(
            session=session,
            job_id=job_id,
            options=OPTIONS,
            classes=["red", "blue"],
            image_count=10,
            data_prefix=f"training/{job_id}/",
            **extra,
        )


def scope_on(db: Sessions) -> Callable[[], AbstractContextManager[Session]]:
    """A session_scope stand-in on the test database: for code under test that opens its own sessions."""

    @contextmanager
    def scope() -> Iterator[Session]:
        with db.begin() as session:
            yield session

    return scope
