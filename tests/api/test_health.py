"""Liveness, readiness, metrics, outage handling and the API's freedom from torch."""

import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagebatch.db.models import Image, Job
from tests.api.conftest import REPO
from tests.api.helpers import submit_uris


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz_and_readyz(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    response = api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def test_metrics_report_database_counts_and_http_routes(api):
    job = submit_uris(api, ["https://example.com/m.jpg"])
    api.client.get(f"/v1/jobs/{job['id']}")
    api.client.get("/no/such/page")
    response = api.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    with Session(api.engine) as session:
        jobs = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        images = dict(session.execute(select(Image.status, func.count()).group_by(Image.status)).all())
    for state in ("queued", "running", "completed", "failed", "cancelling", "cancelled"):
        assert samples[("imagebatch_jobs", (("state", state),))] == jobs.get(state, 0)
    for status in ("pending", "running", "ok", "error", "cancelled"):
        assert samples[("imagebatch_images", (("status", status),))] == images.get(status, 0)
    assert samples[("imagebatch_database_up", ())] == 1
    key = ("imagebatch_http_requests_total", (("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "200")))
    assert samples[key] >= 1
    unmatched = ("imagebatch_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))
    assert samples[unmatched] >= 1
    assert samples[("imagebatch_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/jobs")))] >= 1


def test_broker_down_makes_readyz_503(degraded_api):
    response = degraded_api.client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["detail"].startswith("broker unavailable") and body["database"] == "ok"


def test_database_down_is_503_not_a_traceback(no_db_api):
    assert no_db_api.client.get("/healthz").status_code == 200
    for method, path in [("GET", "/v1/jobs"), ("GET", "/v1/jobs/abc"), ("GET", "/v1/jobs/abc/results")]:
        response = no_db_api.client.request(method, path)
        assert response.status_code == 503, response.text
        assert response.json()["detail"].startswith("database unavailable: ")
    response = no_db_api.client.post("/v1/jobs", files=[("files", ("a.jpg", b"a"))])
    assert response.status_code == 503 and response.json()["detail"].startswith("database unavailable")
    assert not (no_db_api.blobs.exists() and any(no_db_api.blobs.iterdir()))  # upload cleaned up
    ready = no_db_api.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["detail"].startswith("database unavailable")
    metrics = _samples(no_db_api.client.get("/metrics").text)
    assert metrics[("imagebatch_database_up", ())] == 0


def test_the_api_never_imports_pillow():
    """The API streams image bytes; it never decodes one (the worker stores thumbnails and previews)."""
    code = (
        "import sys\n"
        "from imagebatch.api.main import app\n"
        "app.openapi()\n"
        "assert 'PIL' not in sys.modules, sorted(m for m in sys.modules if m.startswith('PIL'))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_importing_the_api_does_not_import_torch_or_worker_code():
    code = (
        "import sys, api.main\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'worker'))\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
