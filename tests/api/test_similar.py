"""Embedding search over real HTTP, against rows written directly as a worker would."""

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from imagebatch.db.models import Image, Job
from tests.api.helpers import image_rows, submit_uris, write_results


def _as_float32(api, job_id: str) -> None:
    """Store a job's embeddings as float32, as a worker with EMBEDDING_DTYPE=float32 would."""
    with Session(api.engine) as session:
        for row in image_rows(api, job_id):
            vector = np.frombuffer(row.embedding, dtype="<f2").astype("<f4")
            session.execute(update(Image).where(Image.id == row.id).values(embedding=vector.tobytes()))
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(reproducibility={"model": "resnet50", "embedding_dtype": "float32"})
        )
        session.commit()


def test_model_scope_reads_each_jobs_embeddings_in_that_jobs_dtype(api):
    uris = [f"https://example.com/similar/{i}.jpg" for i in range(4)]
    half = submit_uris(api, uris, model="resnet50")["id"]
    full = submit_uris(api, uris, model="resnet50")["id"]
    expected = write_results(api, half, ["ok"] * 4, top_k=3, seed=5)  # float16, as its record says
    expected += write_results(api, full, ["ok"] * 4, top_k=3, seed=6)
    _as_float32(api, full)
    vectors = {
        (job, i % 4): exp.embedding.astype(np.float64)
        for i, (job, exp) in enumerate(zip([half] * 4 + [full] * 4, expected, strict=True))
    }
    query = vectors[(half, 0)]
    cosine = {
        key: float(v @ query / (np.linalg.norm(v) * np.linalg.norm(query)))
        for key, v in vectors.items()
        if key != (half, 0)
    }
    ranking = sorted(cosine, key=cosine.get, reverse=True)

    response = api.client.get(f"/v1/jobs/{half}/images/0/similar", params={"k": 7, "scope": "model"})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(item["job_id"], item["index"]) for item in items] == ranking
    np.testing.assert_allclose([item["similarity"] for item in items], [cosine[k] for k in ranking], rtol=1e-5)
