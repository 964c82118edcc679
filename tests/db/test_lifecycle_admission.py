"""Admission on both databases: racing submissions never pass a tenant's limit; Retry-After follows the queue."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from imagebatch.db import lifecycle
from imagebatch.db.models import Image, Job, JobState, TrainingJob, utcnow
from imagebatch.db.tenant_load import RATE_WINDOW, UNKNOWN_WAIT
from tests.db.helpers import add_job

LIMIT, RACERS = 3, 8


def _submit(engine: Engine, tenant: str, job_id: str, limits: lifecycle.TenantLimits, start: threading.Barrier) -> bool:
    """One submission as the API makes it: admission first, then the insert, one transaction."""
    with Session(engine) as session:
        start.wait(timeout=30)
        try:
            lifecycle.admit_job(session=session, tenant=tenant, new_images=1, limits=limits)
        except lifecycle.OverLimit:
            return False
        lifecycle.create_job(
            session=session,
            job_id=job_id,
            model="resnet18",
            top_k=5,
            store_probabilities=False,
            precision="fp32",
            chunk_size=4,
            images=[lifecycle.ImageSource("a.jpg", "file:/nowhere/a.jpg")],
            tenant=tenant,
        )
        session.commit()
        return True


@pytest.mark.parametrize("round_", range(3))
def test_racing_submissions_never_pass_the_active_jobs_limit(engine, round_):
    limits = lifecycle.TenantLimits(active_jobs=LIMIT)
    start = threading.Barrier(RACERS)
    with ThreadPoolExecutor(RACERS) as pool:
        admitted = list(pool.map(lambda i: _submit(engine, "racer", f"race{round_}_{i}", limits, start), range(RACERS)))
    assert sum(admitted) == LIMIT


def _busy_tenant(db: sessionmaker[Session], open_per_job: list[int], finished_recently: int) -> None:
    """Tenant "busy": unfinished jobs with these many open images, and one job whose
    `finished_recently` images were processed within the rate window."""
    for n, count in enumerate(open_per_job):
        add_job(db, f"open{n}", total=count, tenant="busy")
    add_job(db, "done", total=max(finished_recently, 1), tenant="busy")
    with db.begin() as session:
        session.execute(update(Job).where(Job.id == "done").values(state=JobState.COMPLETED.value))
        processed_at = utcnow() if finished_recently else None
        session.execute(update(Image).where(Image.job_id == "done").values(status="ok", processed_at=processed_at))


def _refusal(db: sessionmaker[Session], limits: lifecycle.TenantLimits, new_images: int = 1) -> lifecycle.OverLimit:
    with db() as session, pytest.raises(lifecycle.OverLimit) as refused:
        lifecycle.admit_job(session=session, tenant="busy", new_images=new_images, limits=limits)
    return refused.value


def test_retry_after_is_the_time_the_nearest_job_needs_at_the_recent_pace(db):
    _busy_tenant(db, open_per_job=[10, 20, 40], finished_recently=60)
    rate = 60 / RATE_WINDOW.total_seconds()  # images per second the tenant finished lately
    refused = _refusal(db, lifecycle.TenantLimits(active_jobs=3))
    # Three jobs share that pace, so the nearest (10 images open) needs 3 x 10 images' time.
    assert refused.retry_after == int(10 * 3 / rate)
    assert "MAX_ACTIVE_JOBS_PER_TENANT" in refused.detail


def test_retry_after_for_images_in_flight_counts_the_excess(db):
    _busy_tenant(db, open_per_job=[10, 20], finished_recently=30)
    rate = 30 / RATE_WINDOW.total_seconds()
    refused = _refusal(db, lifecycle.TenantLimits(images_in_flight=35), new_images=15)
    assert refused.retry_after == int((30 + 15 - 35) / rate)
    assert "MAX_IMAGES_IN_FLIGHT_PER_TENANT" in refused.detail


def test_without_recent_throughput_the_hint_is_the_plain_default(db):
    _busy_tenant(db, open_per_job=[5, 5, 5], finished_recently=0)
    assert _refusal(db, lifecycle.TenantLimits(active_jobs=3)).retry_after == UNKNOWN_WAIT


def _submit_training(engine: Engine, tenant: str, job_id: str, start: threading.Barrier) -> bool:
    """One training submission as the API makes it: admission under the lock, then the insert."""
    with Session(engine) as session:
        start.wait(timeout=30)
        try:
            lifecycle.admit_training_job(session=session, tenant=tenant, most=LIMIT)
        except lifecycle.OverLimit:
            return False
        lifecycle.create_training_job(
            session=session,
            job_id=job_id,
            options={"name": "colours", "base_model": "resnet18", "mode": "transfer", "epochs": 3},
            classes=["red", "blue"],
            image_count=10,
            data_prefix=f"training/{job_id}/",
            tenant=tenant,
        )
        session.commit()
        return True


@pytest.mark.parametrize("round_", range(2))
def test_racing_training_submissions_never_pass_the_active_jobs_limit(engine, round_):
    start = threading.Barrier(RACERS)
    with ThreadPoolExecutor(RACERS) as pool:
        admitted = list(
            pool.map(lambda i: _submit_training(engine, "trainer", f"tr{round_}_{i}", start), range(RACERS))
        )
    assert sum(admitted) == LIMIT


def test_training_retry_after_is_the_nearest_runs_epochs_left_at_its_pace(db):
    with db.begin() as session:
        for job_id, done, planned in (("near", 3, 4), ("far", 1, 10)):
            lifecycle.create_training_job(
                session=session,
                job_id=job_id,
                options={"name": job_id, "base_model": "resnet18", "mode": "transfer", "epochs": planned},
                classes=["a", "b"],
                image_count=4,
                data_prefix=f"training/{job_id}/",
                tenant="busy",
            )
            epochs = [{"epoch": e + 1, "seconds": 20.0 + 10 * e} for e in range(done)]
            session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(epochs=epochs))
    with db() as session, pytest.raises(lifecycle.OverLimit) as refusal:
        lifecycle.admit_training_job(session=session, tenant="busy", most=2)
    # "near": 1 epoch left at a mean of (20 + 30 + 40) / 3 = 30 s; "far": 9 left at 20 s.
    assert refusal.value.retry_after == 30
