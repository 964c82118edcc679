"""Job lifecycle over real HTTP: inspect, list with cursors, cancel, delete."""

import base64
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagebatch.db.models import Image
from tests.api.helpers import image_rows, submit_uris, write_results

URLS = [f"https://example.com/{i}.jpg" for i in range(3)]


def test_unknown_job_is_404(api):
    for method, path in [("GET", "/v1/jobs/nope"), ("POST", "/v1/jobs/nope/cancel"), ("DELETE", "/v1/jobs/nope")]:
        response = api.client.request(method, path)
        assert response.status_code == 404 and response.json() == {"detail": "Job not found"}
    # Ids no job can have (NUL, which PostgreSQL refuses; too long) are 404 too, without a query.
    for job_id in ("a%00b", "x" * 33, "%C3%A9t%C3%A9"):
        for suffix in ("", "/results", "/results.csv", "/images/0"):
            response = api.client.get(f"/v1/jobs/{job_id}{suffix}")
            assert response.status_code == 404 and response.json() == {"detail": "Job not found"}, response.text


def test_cancel_without_workers_cancels_every_pending_image_then_409(api):
    job = submit_uris(api, URLS)
    response = api.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    cancelled = response.json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["counts"] == {"total": 3, "succeeded": 0, "failed": 0, "pending": 0, "cancelled": 3}
    assert cancelled["progress"] == 1.0 and cancelled["eta_seconds"] == 0
    assert cancelled["timestamps"]["cancelling"] and cancelled["timestamps"]["cancelled"]
    assert {r.status for r in image_rows(api, job["id"])} == {"cancelled"}
    again = api.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_delete_removes_rows_and_blobs(api):
    response = api.client.post("/v1/jobs", files=[("files", ("a.jpg", b"a")), ("files", ("b.jpg", b"b"))])
    job_id = response.json()["id"]
    assert (api.blobs / job_id / "000001.jpg").read_bytes() == b"b"
    response = api.client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 204 and response.content == b""
    assert api.client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not (api.blobs / job_id).exists()
    with Session(api.engine) as session:
        assert session.scalar(select(func.count()).select_from(Image).where(Image.job_id == job_id)) == 0
    assert api.client.delete(f"/v1/jobs/{job_id}").status_code == 404


def test_rate_eta_and_progress_of_a_running_job(api):
    job = submit_uris(api, [f"https://example.com/{i}.jpg" for i in range(6)])
    write_results(api, job["id"], ["ok", "ok", "error", "pending", "pending", "running"], top_k=5)
    view = api.client.get(f"/v1/jobs/{job['id']}").json()
    assert view["state"] == "running" and view["timestamps"]["running"]
    assert view["counts"] == {"total": 6, "succeeded": 2, "failed": 1, "pending": 3, "cancelled": 0}
    assert view["progress"] == 0.5
    rate = view["images_per_second"]
    assert rate > 0 and abs(view["eta_seconds"] - 3 / rate) < 1e-6 * max(1.0, 3 / rate)
    assert view["reproducibility"]["embedding_dtype"] == "float16"


def test_list_is_newest_first_with_a_stable_cursor(api):
    ids = [submit_uris(api, URLS[: 1 + i])["id"] for i in range(3)]
    api.client.post(f"/v1/jobs/{ids[1]}/cancel")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/jobs", params=params).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        pages += 1
        if cursor is None:
            # A job created after the first page must not shift later pages.
            submit_uris(api, URLS)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    seen_ids = [job["id"] for job in seen]
    assert len(seen_ids) == len(set(seen_ids)) and pages >= 2
    mine = [job for job in seen if job["id"] in ids]
    assert [job["id"] for job in mine] == ids[::-1]
    assert [job["counts"]["total"] for job in mine] == [3, 2, 1]
    assert [job["state"] for job in mine] == ["queued", "cancelled", "queued"]
    stamps = [job["timestamps"]["created"] for job in seen]
    assert stamps == sorted(stamps, reverse=True)
    # Counts on the list page agree with the single-job view.
    for job in mine:
        assert api.client.get(f"/v1/jobs/{job['id']}").json()["counts"] == job["counts"]


def test_list_filters_by_state_and_rejects_bad_parameters(api):
    job = submit_uris(api, URLS[:1])
    api.client.post(f"/v1/jobs/{job['id']}/cancel")
    queued = submit_uris(api, URLS[:1])
    items = api.client.get("/v1/jobs", params={"state": "cancelled", "limit": 500}).json()["items"]
    assert job["id"] in [j["id"] for j in items] and {j["state"] for j in items} == {"cancelled"}
    # Empty parameters (as in `?state=&cursor=`) mean "no filter".
    unfiltered = api.client.get("/v1/jobs?state=&limit=500&cursor=").json()["items"]
    assert {job["id"], queued["id"]} <= {j["id"] for j in unfiltered}
    for params, fragment in [
        ({"state": "done"}, "state"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
    ]:
        response = api.client.get("/v1/jobs", params=params)
        assert response.status_code == 422 and response.json()["detail"].startswith(fragment), response.text


def _b64(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        _b64({"c": "2026-01-01T00:00:00+00:00", "i": "a\x00b"}),  # NUL: PostgreSQL refuses the string
        _b64({"c": "2026-01-01T00:00:00+00:00", "i": "x" * 33}),  # longer than a job id
        _b64({"c": "2026-01-01T00:00:00+00:00", "i": 7}),
        _b64({"c": True, "i": "abc"}),
        _b64({"c": 1767225600, "i": "abc"}),
        _b64({"c": "99999-01-01T00:00:00+00:00", "i": "abc"}),
        _b64({"c": "0001-01-01T00:00:00+23:59", "i": "abc"}),  # before year 1 in UTC
        _b64({"c": "2026-01-01T00:00:00", "i": "abc"}),  # no time zone: not one of ours
        _b64({"c": "yesterday", "i": "abc"}),
        _b64({"c": "2026-01-01T00:00:00+00:00", "i": "abc", "x": 1}),
        _b64({"after": 3}),  # a results cursor
        _b64(None),
    ],
)
def test_a_tampered_job_cursor_is_400_naming_the_cursor(api, cursor):
    response = api.client.get("/v1/jobs", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("cursor: "), response.text
