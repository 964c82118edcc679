"""The Parquet export over real HTTP: the schema of core.results, streamed in row groups, equal to the client's."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from imagebatch.client import Client
from imagebatch.core.result_files import arrow_schema
from imagebatch.db.models import Image
from tests.api.helpers import LABELS, submit_uris, write_results

STATUSES = ["ok", "error", "ok", "cancelled", "ok", "pending"]
TOP_K = 3


@pytest.fixture(scope="module")
def finished(api):
    job = submit_uris(
        api, [f"https://example.com/p{i}.jpg" for i in range(len(STATUSES))], top_k=TOP_K, store_probabilities=True
    )
    return job["id"], write_results(api, job["id"], STATUSES, top_k=TOP_K, seed=5)


def _parquet(api, job_id: str, **params):
    response = api.client.get(f"/v1/jobs/{job_id}/results.parquet", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"] == f'attachment; filename="{job_id}.parquet"'
    return pq.ParquetFile(io.BytesIO(response.content))


def test_server_and_client_parquet_are_the_same_table(api, finished, tmp_path):
    job_id, expected = finished
    served = _parquet(api, job_id, probabilities="true").read()
    with Client(api.base_url) as client:
        exported = pq.read_table(client.get_job(job_id).export(tmp_path / "x.parquet", probabilities=True))
    assert served.schema == exported.schema == arrow_schema(embedding_size=512, probability_count=1000)
    assert served.equals(exported)
    rows = served.to_pylist()
    assert [r["index"] for r in rows] == list(range(len(STATUSES)))
    for row, exp in zip(rows, expected, strict=True):
        assert row["status"] == exp.status
        if exp.status != "ok":
            assert row["embedding"] is None and row["probabilities"] is None and row["top_k"] is None
            continue
        # float16 embeddings and float32 probabilities arrive exactly as stored.
        assert np.array_equal(np.array(row["embedding"], dtype=np.float32), exp.embedding.astype(np.float32))
        assert np.array_equal(np.array(row["probabilities"], dtype=np.float32), exp.probs)
        assert [t["label"] for t in row["top_k"]] == [LABELS[i] for i in exp.top[:TOP_K]]
        assert row["confidence"] == pytest.approx(exp.confidence, rel=1e-6)
    assert (rows[1]["error_category"], rows[1]["error_message"]) == ("unreadable", "cannot identify image file")


def test_filters_apply_and_probabilities_are_optional(api, finished, tmp_path):
    job_id, _ = finished
    table = _parquet(api, job_id, status="ok").read()
    assert "probabilities" not in table.column_names and table.column("index").to_pylist() == [0, 2, 4]
    with Client(api.base_url) as client:
        exported = pq.read_table(client.get_job(job_id).export(tmp_path / "ok.pq", status="ok"))
    assert table.equals(exported)


def test_probabilities_need_stored_probabilities(api):
    job = submit_uris(api, ["https://example.com/y.jpg"], store_probabilities=False)
    response = api.client.get(f"/v1/jobs/{job['id']}/results.parquet", params={"probabilities": "true"})
    assert response.status_code == 409 and "store_probabilities" in response.json()["detail"]
    assert api.client.get("/v1/jobs/missing/results.parquet").status_code == 404


def test_large_job_streams_in_row_groups_in_index_order(api):
    n = 1100
    job = submit_uris(api, [f"https://example.com/big/{i}.jpg" for i in range(n)], top_k=1)
    with Session(api.engine) as session:
        session.execute(
            update(Image)
            .where(Image.job_id == job["id"], Image.idx % 3 == 0)
            .values(status="ok", top1_label="tabby", confidence=0.75)
        )
        session.commit()
    parquet = _parquet(api, job["id"])
    assert parquet.metadata.num_row_groups > 1 and parquet.metadata.num_rows == n
    table = parquet.read()
    assert table.column("index").to_pylist() == list(range(n))
    tabby = _parquet(api, job["id"], label="tabby").read()
    assert tabby.column("index").to_pylist() == list(range(0, n, 3))
    assert set(tabby.column("confidence").to_pylist()) == {0.75}
