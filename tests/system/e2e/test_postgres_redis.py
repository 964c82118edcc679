"""End to end on PostgreSQL + Redis: a real API process and a real Celery worker process."""

import csv
import io
import math
import tarfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.harness.images import write_broken, write_photos
from tests.harness.reference import reference_labels, reference_probabilities
from tests.harness.stack import wait_for_job

pytestmark = pytest.mark.e2e


def _upload(client: httpx.Client, paths: list[Path], **options) -> httpx.Response:
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
    return client.post("/v1/jobs", files=files, data=data)


def _all_results(client: httpx.Client, job_id: str, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        page = client.get(f"/v1/jobs/{job_id}/results", params={**params, "cursor": cursor} if cursor else params)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


@pytest.fixture(scope="module")
def upload_job(pg_stack, tmp_path_factory, torch_home) -> dict:
    """One fp32 job of 12 photos and 3 broken files, with all probabilities stored."""
    folder = tmp_path_factory.mktemp("upload")
    photos = write_photos(folder, 12)
    broken = write_broken(folder)
    with httpx.Client(base_url=pg_stack.url, timeout=60) as client:
        response = _upload(client, photos + list(broken.values()), precision="fp32", store_probabilities=True, top_k=5)
        assert response.status_code == 202, response.text
        accepted = response.json()
        final = wait_for_job(client, accepted["id"])
    return {"accepted": accepted, "final": final, "photos": photos, "broken": broken}


def test_upload_is_accepted_at_once_and_completes_with_failed_count(upload_job, pg_stack):
    accepted, final = upload_job["accepted"], upload_job["final"]
    assert accepted["state"] in ("queued", "running")
    assert accepted["counts"]["total"] == 15
    assert final["state"] == "completed", pg_stack.all_logs()
    assert final["counts"] == {"total": 15, "succeeded": 12, "failed": 3, "pending": 0, "cancelled": 0}
    assert final["progress"] == pytest.approx(1.0)
    assert final["images_per_second"] > 0
    stamps = final["timestamps"]
    assert stamps["queued"] <= stamps["running"] <= stamps["completed"]


def test_reproducibility_record_names_the_weights_file_actually_loaded(upload_job, checkpoint_sha256):
    record = upload_job["final"]["reproducibility"]
    assert record["model"] == "resnet18"
    assert record["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert record["weights_sha256"] == checkpoint_sha256["resnet18-f37072fd.pth"]
    assert record["precision"] == "fp32"
    assert record["device"] == "cpu"
    assert "resize_size=[256]" in record["transforms"]


def test_broken_images_become_error_rows(upload_job, pg_client):
    job_id = upload_job["accepted"]["id"]
    errors = _all_results(pg_client, job_id, errors_only="true")
    by_source = {item["source"]: item["error"]["category"] for item in errors}
    assert by_source == {"truncated.jpg": "truncated", "empty.jpg": "empty_file", "notes.jpg": "unreadable"}
    assert all(item["status"] == "error" and item["error"]["message"] for item in errors)


def test_probabilities_match_torchvision_reference(upload_job, pg_client, torch_home):
    job_id = upload_job["accepted"]["id"]
    items = _all_results(pg_client, job_id, status="ok", include="probabilities,embedding")
    labels = reference_labels("resnet18")
    by_source = {item["source"]: item for item in items}
    assert len(by_source) == 12
    for path in upload_job["photos"]:
        item = by_source[path.name]
        reference = reference_probabilities("resnet18", torch_home, path).numpy()
        ours = np.asarray(item["probabilities"], dtype=np.float64)
        assert ours.shape == (1000,)
        assert np.abs(ours - reference).max() <= 1e-4
        best = int(reference.argmax())
        assert item["top_k"][0]["index"] == best
        assert item["top1_label"] == labels[best]
        assert len(item["embedding"]) == 512
        order = np.sort(reference)[::-1]
        assert item["confidence"] == pytest.approx(order[0], abs=1e-4)
        assert item["margin"] == pytest.approx(order[0] - order[1], abs=1e-4)
        assert item["top5_mean"] == pytest.approx(order[:5].mean(), abs=1e-4)
        entropy = -float(np.sum(reference * np.log(np.clip(reference, 1e-30, None))))
        assert item["entropy"] == pytest.approx(entropy, abs=1e-3)
        assert [t["probability"] for t in item["top_k"]] == sorted(
            (t["probability"] for t in item["top_k"]), reverse=True
        )


def test_image_statistics_are_recorded(upload_job, pg_client):
    from PIL import Image, ImageStat

    job_id = upload_job["accepted"]["id"]
    items = {i["source"]: i for i in _all_results(pg_client, job_id, status="ok")}
    path = upload_job["photos"][0]
    with Image.open(path) as image:
        stat = ImageStat.Stat(image.convert("RGB"))
        size, fmt, mode = image.size, image.format, image.mode
    item = items[path.name]
    assert (item["width"], item["height"]) == size
    assert item["format"] == fmt and item["mode"] == mode
    assert item["channel_mean"] == pytest.approx(stat.mean, abs=1e-3)
    assert item["channel_std"] == pytest.approx(stat.stddev, abs=1e-3)


def test_cursor_pagination_visits_every_row_once(upload_job, pg_client):
    job_id = upload_job["accepted"]["id"]
    indexes = [item["index"] for item in _all_results(pg_client, job_id, limit=4)]
    assert indexes == list(range(15))


def test_filters(upload_job, pg_client):
    job_id = upload_job["accepted"]["id"]
    ok = _all_results(pg_client, job_id, status="ok")
    label = ok[0]["top1_label"]
    by_label = _all_results(pg_client, job_id, label=label)
    assert by_label and all(i["top1_label"] == label for i in by_label)
    assert len(by_label) == sum(i["top1_label"] == label for i in ok)
    median = sorted(i["confidence"] for i in ok)[len(ok) // 2]
    confident = _all_results(pg_client, job_id, min_confidence=median)
    assert {i["index"] for i in confident} == {i["index"] for i in ok if i["confidence"] >= median}
    unsure = _all_results(pg_client, job_id, max_confidence=median)
    assert {i["index"] for i in unsure} == {i["index"] for i in ok if i["confidence"] <= median}
    entropy_cut = sorted(i["entropy"] for i in ok)[len(ok) // 2]
    calm = _all_results(pg_client, job_id, max_entropy=entropy_cut)
    assert {i["index"] for i in calm} == {i["index"] for i in ok if i["entropy"] <= entropy_cut}
    assert pg_client.get(f"/v1/jobs/{job_id}/results", params={"min_confidence": "x"}).status_code == 422


def test_csv_export_streams_every_row_with_probability_columns(upload_job, pg_client):
    job_id = upload_job["accepted"]["id"]
    response = pg_client.get(f"/v1/jobs/{job_id}/results.csv", params={"probabilities": "true"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 15
    header = list(rows[0].keys())
    probability_columns = [c for c in header if c.startswith("p_")]
    assert len(probability_columns) == 1000
    assert "p_tench" in header
    ok_row = next(r for r in rows if r["status"] == "ok")
    assert math.isclose(sum(float(ok_row[c]) for c in probability_columns), 1.0, abs_tol=1e-3)
    assert ok_row["top1_label"] == ok_row["top1_label"] and float(ok_row["confidence"]) > 0
    error_row = next(r for r in rows if r["source"] == "empty.jpg")
    assert error_row["error_category"] == "empty_file"


def test_archive_submission_with_nested_members(pg_client, tmp_path):
    photos = write_photos(tmp_path / "src", 5, start_seed=100)
    zip_path = tmp_path / "batch.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for i, path in enumerate(photos):
            archive.write(path, f"level1/level{i % 2}/{path.name}")
        archive.writestr("level1/README.txt", "not an image")
    response = pg_client.post("/v1/jobs", files={"archive": ("batch.zip", zip_path.read_bytes())})
    assert response.status_code == 202, response.text
    final = wait_for_job(pg_client, response.json()["id"])
    assert final["state"] == "completed"
    assert final["counts"]["succeeded"] == 5
    assert [s["source"] for s in final["skipped"]] == ["level1/README.txt"]

    tar_path = tmp_path / "batch.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        for path in photos[:3]:
            archive.add(path, f"deep/er/{path.name}")
    response = pg_client.post("/v1/jobs", files={"archive": ("batch.tar.gz", tar_path.read_bytes())})
    assert response.status_code == 202, response.text
    final = wait_for_job(pg_client, response.json()["id"])
    assert final["counts"] == {"total": 3, "succeeded": 3, "failed": 0, "pending": 0, "cancelled": 0}


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server for URI manifests (the machine has no internet)."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_uri_manifest_with_local_paths_and_urls(pg_client, uri_root, http_server):
    served_dir, base = http_server
    local = write_photos(uri_root / "manifest", 3, start_seed=200)
    remote = write_photos(served_dir, 2, start_seed=300)
    uris = [str(p) for p in local] + [f"{base}/{p.name}" for p in remote] + [f"{base}/missing.jpg"]
    response = pg_client.post("/v1/jobs", json={"uris": uris, "top_k": 3})
    assert response.status_code == 202, response.text
    final = wait_for_job(pg_client, response.json()["id"])
    assert final["state"] == "completed"
    assert final["counts"]["succeeded"] == 5 and final["counts"]["failed"] == 1
    items = _all_results(pg_client, final["id"])
    assert [i["source"] for i in items] == uris
    assert items[-1]["error"]["category"] == "fetch_failed"
    assert all(len(i["top_k"]) == 3 for i in items[:-1])


def test_local_path_outside_allowed_root_is_refused(pg_client):
    response = pg_client.post("/v1/jobs", json={"uris": ["/etc/passwd"]})
    assert response.status_code == 422
    assert "/etc/passwd" in response.text


def test_resnet50_job_gives_2048_dim_embeddings(pg_client, tmp_path, checkpoint_sha256):
    photos = write_photos(tmp_path, 3, start_seed=400)
    response = _upload(pg_client, photos, model="resnet50", precision="fp32")
    assert response.status_code == 202, response.text
    final = wait_for_job(pg_client, response.json()["id"])
    assert final["state"] == "completed"
    assert final["reproducibility"]["weights"] == "ResNet50_Weights.IMAGENET1K_V2"
    assert final["reproducibility"]["weights_sha256"] == checkpoint_sha256["resnet50-11ad3fa6.pth"]
    assert "resize_size=[232]" in final["reproducibility"]["transforms"]
    items = _all_results(pg_client, final["id"], include="embedding")
    assert all(len(i["embedding"]) == 2048 for i in items)


def test_cancel_skips_remaining_chunks_and_keeps_finished_rows(pg_client, tmp_path):
    photos = write_photos(tmp_path, 160, start_seed=500)
    response = _upload(pg_client, photos)
    assert response.status_code == 202
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while pg_client.get(f"/v1/jobs/{job_id}").json()["counts"]["succeeded"] == 0:
        assert time.monotonic() < deadline, "no chunk finished within 120 s"
        time.sleep(0.05)
    cancel = pg_client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancel.status_code == 202
    assert cancel.json()["state"] in ("cancelling", "cancelled")
    final = wait_for_job(pg_client, job_id)
    counts = final["counts"]
    assert final["state"] == "cancelled"
    assert counts["cancelled"] > 0 and counts["succeeded"] > 0 and counts["pending"] == 0
    assert counts["succeeded"] + counts["failed"] + counts["cancelled"] == 160
    done = _all_results(pg_client, job_id, status="ok")
    assert len(done) == counts["succeeded"]
    assert pg_client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def test_delete_removes_rows_and_blobs(pg_client, pg_stack, tmp_path):
    photos = write_photos(tmp_path, 3, start_seed=700)
    job_id = _upload(pg_client, photos).json()["id"]
    wait_for_job(pg_client, job_id)
    blob_dir = Path(pg_stack.env["IMAGEBATCH_DATA_DIR"]) / "blobs" / job_id
    uploads = [p for p in blob_dir.iterdir() if p.is_file()]
    packs = list((blob_dir / "renditions").iterdir())  # the worker's thumbnails: one pack per chunk
    assert len(uploads) == 3 and len(packs) >= 1 and all(p.stat().st_size > 0 for p in packs)
    assert pg_client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert pg_client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert pg_client.get(f"/v1/jobs/{job_id}/results").status_code == 404
    assert not blob_dir.exists()


def test_job_list_includes_submitted_jobs(upload_job, pg_client):
    listed = pg_client.get("/v1/jobs", params={"limit": 100}).json()["items"]
    assert upload_job["accepted"]["id"] in {job["id"] for job in listed}
