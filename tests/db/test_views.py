"""The job view on SQLite and PostgreSQL: counts from rows, progress, rate, ETA and the JSON the API sends."""

from datetime import timedelta

from sqlalchemy import update

from imagebatch.db import lifecycle, views
from imagebatch.db.models import Image, Job, utcnow
from tests.db.helpers import add_job, claim, finish


def _view(db, job_id: str) -> views.JobView | None:
    with db() as session:
        return views.load_job_view(session, job_id)


def test_a_running_jobs_view_counts_its_rows_and_estimates_the_rest(db):
    add_job(db, "v", total=10, callback_url="https://example.com/hook")
    finish(db, "v", claim(db, "v", 0, 4))
    claim(db, "v", 4, 8)
    with db.begin() as session:  # started 10 s ago: 4 images done means 0.4 images/s
        session.execute(update(Job).where(Job.id == "v").values(running_at=utcnow() - timedelta(seconds=10)))
    view = _view(db, "v")
    assert view.counts.model_dump() == {"total": 10, "succeeded": 4, "failed": 0, "pending": 6, "cancelled": 0}
    assert view.state == "running" and view.progress == 0.4
    assert 0.3 < view.images_per_second <= 0.4 and 15 < view.eta_seconds < 21
    assert view.webhook.model_dump() == {
        "url": "https://example.com/hook",
        "state": "pending",
        "attempts": 0,
        "error": None,
        "delivered_at": None,
    }
    doc = view.as_json()
    assert doc["links"] == {"self": "/v1/jobs/v", "results": "/v1/jobs/v/results", "csv": "/v1/jobs/v/results.csv"}
    assert doc["timestamps"]["running"].endswith("Z") and doc["timestamps"]["completed"] is None


def test_a_finished_jobs_rate_stops_at_its_last_image_and_its_eta_is_zero(db):
    add_job(db, "done", total=4)
    finish(db, "done", claim(db, "done", 0, 4))
    start = utcnow() - timedelta(seconds=100)
    with db.begin() as session:
        session.execute(update(Job).where(Job.id == "done").values(running_at=start))
        session.execute(update(Image).where(Image.job_id == "done").values(processed_at=start + timedelta(seconds=2)))
    view = _view(db, "done")
    assert (view.state, view.progress, view.eta_seconds, view.images_per_second) == ("completed", 1.0, 0.0, 2.0)
    assert view.webhook is None


def test_views_of_many_jobs_and_of_a_missing_one(db):
    add_job(db, "a", total=2)
    add_job(db, "b", total=3)
    with db.begin() as session:
        lifecycle.request_cancel(session=session, job_id="b")
    with db() as session:
        jobs = [session.get(Job, "a"), session.get(Job, "b")]
        a, b = views.job_views(session, jobs)
        assert views.load_job_view(session, "missing") is None
    assert (a.counts.pending, a.progress, a.eta_seconds) == (2, 0.0, None)
    assert (b.state, b.counts.cancelled, b.progress) == ("cancelled", 3, 1.0)
