"""End to end on the embedded defaults: SQLite database, SQLite broker, two real processes."""

import csv
import io
from pathlib import Path

import httpx
import pytest

from tests.harness.images import write_broken, write_photos
from tests.harness.stack import wait_for_job

pytestmark = pytest.mark.e2e


def test_embedded_defaults_run_a_job_end_to_end(embedded_stack, tmp_path, checkpoint_sha256):
    photos = write_photos(tmp_path, 10)
    broken = write_broken(tmp_path / "broken")
    paths = photos + [broken["truncated"]]
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    with httpx.Client(base_url=embedded_stack.url, timeout=60) as client:
        response = client.post("/v1/jobs", files=files, data={"top_k": "5"})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        final = wait_for_job(client, job_id)
        assert final["state"] == "completed", embedded_stack.all_logs()
        assert final["counts"] == {"total": 11, "succeeded": 10, "failed": 1, "pending": 0, "cancelled": 0}
        assert final["reproducibility"]["weights_sha256"] == checkpoint_sha256["resnet18-f37072fd.pth"]

        page = client.get(f"/v1/jobs/{job_id}/results", params={"limit": 6}).json()
        assert [i["index"] for i in page["items"]] == list(range(6))
        rest = client.get(f"/v1/jobs/{job_id}/results", params={"limit": 6, "cursor": page["next_cursor"]}).json()
        assert [i["index"] for i in rest["items"]] == list(range(6, 11))
        assert rest["next_cursor"] is None
        assert all(len(i["top_k"]) == 5 for i in page["items"])

        exported = client.get(f"/v1/jobs/{job_id}/results.csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["source"] for r in rows] == [p.name for p in paths]
        assert rows[-1]["error_category"] == "truncated"
        assert rows[0]["top1_label"] and float(rows[0]["confidence"]) > 0
    # Both the database and the broker really were SQLite files in the data directory.
    data_dir = Path(embedded_stack.env["IMAGEBATCH_DATA_DIR"])
    assert (data_dir / "imagebatch.sqlite").stat().st_size > 0
    assert (data_dir / "broker.sqlite").stat().st_size > 0
