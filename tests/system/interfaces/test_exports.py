"""The API's results.parquet and the client's Parquet export of real jobs are the same table."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from imagebatch.client import Client
from imagebatch.core.result_files import arrow_schema
from tests.harness.images import write_broken, write_photos
from tests.harness.stack import wait_for_job

pytestmark = pytest.mark.e2e


def _both(stack, api_key: str, client, job_id: str, tmp_path, probabilities: bool = False):
    """(the API's table, the client's table) of one job's results."""
    params = {"probabilities": "true"} if probabilities else {}
    response = client.get(f"/v1/jobs/{job_id}/results.parquet", params=params)
    assert response.status_code == 200, response.text
    served = pq.read_table(io.BytesIO(response.content))
    with Client(stack.url, api_key=api_key) as api:
        path = api.get_job(job_id).export(tmp_path / "client.parquet", probabilities=probabilities)
    return served, pq.read_table(path)


def test_api_and_client_parquet_of_a_finished_job_are_identical(stack, api_key, client, finished_job, tmp_path):
    job_id = finished_job["job"]["id"]
    served, exported = _both(stack, api_key, client, job_id, tmp_path)
    assert served.schema == exported.schema == arrow_schema(embedding_size=512)
    assert served.equals(exported) and served.num_rows == 10
    items = client.get(f"/v1/jobs/{job_id}/results", params={"include": "embedding", "limit": 100}).json()["items"]
    rows = served.to_pylist()
    for row, item in zip(rows, items, strict=True):
        assert (row["index"], row["source"], row["status"]) == (item["index"], item["source"], item["status"])
        if item["status"] == "ok":
            assert np.array_equal(np.array(row["embedding"], dtype=np.float32), np.float32(item["embedding"]))
            assert row["top_k"] == item["top_k"] and row["confidence"] == item["confidence"]
        else:
            assert row["embedding"] is None and row["top_k"] is None
            assert row["error_category"] == item["error"]["category"] == "truncated"
    assert sum(r["status"] == "ok" for r in rows) == 9


def test_api_and_client_parquet_with_probabilities_are_identical(stack, api_key, client, tmp_path):
    paths = write_photos(tmp_path / "in", 2) + [write_broken(tmp_path / "broken")["empty"]]
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    response = client.post("/v1/jobs", files=files, data={"store_probabilities": "true", "top_k": "2"})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"], timeout=180)
    assert job["state"] == "completed" and job["counts"]["failed"] == 1, job
    served, exported = _both(stack, api_key, client, job["id"], tmp_path, probabilities=True)
    assert served.schema == arrow_schema(embedding_size=512, probability_count=1000)
    assert served.equals(exported)
    probabilities = served.column("probabilities").to_pylist()
    assert [p is None for p in probabilities] == [s != "ok" for s in served.column("status").to_pylist()]
    assert all(abs(sum(p) - 1) < 1e-3 for p in probabilities if p is not None)
