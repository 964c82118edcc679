"""Client.similar, the image endpoints, the job summary and the CLI's new parts against the real API."""

import io
import itertools
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from imagebatch.client import Client, NotFound, Unauthorized
from tests.harness.images import write_photos

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _embeddings(client, job_id: str) -> dict[int, list[float]]:
    items = client.get(f"/v1/jobs/{job_id}/results", params={"include": "embedding", "limit": 100}).json()["items"]
    return {i["index"]: i["embedding"] for i in items if i["embedding"]}


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_client_similar_matches_a_hand_computed_cosine_ranking(stack, api_key, client, finished_job):
    job_id = finished_job["job"]["id"]
    vectors = _embeddings(client, job_id)
    expected = sorted(((_cosine(vectors[3], v), i) for i, v in vectors.items() if i != 3), reverse=True)[:4]
    with Client(stack.url, api_key=api_key) as api:
        frame = api.similar(job_id, 3, k=4)
        assert list(frame["index"]) == [i for _, i in expected]
        np.testing.assert_allclose(frame["similarity"], [s for s, _ in expected], rtol=1e-5)
        assert list(frame["job_id"]) == [job_id] * 4
        assert api.similar(f"{job_id}/3", k=4).equals(frame)
        assert api.similar((job_id, 3), k=4).equals(frame)
        assert api.get_job(job_id).similar(3, k=4).equals(frame)
        # Model scope searches every job of resnet18 this tenant owns: at least this job's images.
        assert len(api.similar(job_id, 3, k=50, scope="model")) >= len(vectors) - 1
        with pytest.raises(NotFound):
            api.similar(job_id, 999)


def test_image_content_thumbnail_and_detail(stack, client, finished_job):
    job_id, paths = finished_job["job"]["id"], finished_job["paths"]
    content = client.get(f"/v1/jobs/{job_id}/images/2/content")
    assert content.status_code == 200 and content.content == paths[2].read_bytes()
    assert content.headers["content-type"] == "image/jpeg"
    thumb = client.get(f"/v1/jobs/{job_id}/images/2/thumbnail", params={"size": 64})
    with PILImage.open(io.BytesIO(thumb.content)) as small, PILImage.open(paths[2]) as original:
        assert small.format == "JPEG" and max(small.size) == 64
        assert abs(small.size[0] / small.size[1] - original.size[0] / original.size[1]) < 0.05
    detail = client.get(f"/v1/jobs/{job_id}/images/2").json()
    assert len(detail["embedding"]) == 512 and detail["links"]["thumbnail"].endswith("/images/2/thumbnail")
    # The truncated JPEG still serves its bytes but has no usable thumbnail.
    assert client.get(f"/v1/jobs/{job_id}/images/9/content").content == paths[9].read_bytes()
    assert client.get(f"/v1/jobs/{job_id}/images/9/thumbnail").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/images/99").status_code == 404


def test_another_tenant_cannot_see_images(stack, pg_url, finished_job):
    from imagebatch.db.keys import create_key

    engine = create_engine(pg_url)
    with Session(engine) as session:
        other = create_key(session, tenant="someone-else").secret
        session.commit()
    engine.dispose()
    job_id = finished_job["job"]["id"]
    with Client(stack.url, api_key=other) as api:
        with pytest.raises(NotFound):
            api.image(job_id, 0)
        with pytest.raises(NotFound):
            api.similar(job_id, 0)
    with Client(stack.url, api_key="not-a-key") as api, pytest.raises(Unauthorized):
        api.image(job_id, 0)


def test_summary_counts_match_the_results(client, finished_job):
    job_id = finished_job["job"]["id"]
    items = client.get(f"/v1/jobs/{job_id}/results", params={"limit": 100}).json()["items"]
    summary = client.get(f"/v1/jobs/{job_id}/summary", params={"bins": 10}).json()
    ok = [i for i in items if i["status"] == "ok"]
    labels = Counter(i["top1_label"] for i in ok)
    assert {entry["label"]: entry["count"] for entry in summary["labels"]} == dict(labels)
    assert sum(summary["confidence"]["counts"]) == len(ok) == summary["processed"]
    edges = summary["confidence"]["edges"]
    for n, (low, high) in enumerate(itertools.pairwise(edges)):
        last = n == len(edges) - 2
        inside = [i for i in ok if low <= i["confidence"] < high or (last and i["confidence"] == high)]
        assert summary["confidence"]["counts"][n] == len(inside)
    assert summary["errors"] == [{"category": "truncated", "count": 1}]


def _cli(stack, api_key: str | None, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**stack.env, "IMAGEBATCH_API_URL": stack.url}
    env.pop("IMAGEBATCH_API_KEY", None)
    if api_key:
        env["IMAGEBATCH_API_KEY"] = api_key
    return subprocess.run(
        [str(BIN / "imagebatch"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def test_cli_exports_embeddings_as_npy_and_finds_neighbours(stack, api_key, client, finished_job, tmp_path):
    job_id = finished_job["job"]["id"]
    result = _cli(stack, api_key, "export", job_id, "--out", "emb.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    matrix = np.load(tmp_path / "emb.npy")
    vectors = _embeddings(client, job_id)
    assert matrix.shape == (10, 512) and matrix.dtype == np.float32
    for index, vector in vectors.items():
        np.testing.assert_array_equal(matrix[index], np.asarray(vector, dtype=np.float32))
    assert np.isnan(matrix[9]).all()  # the truncated JPEG has no embedding

    similar = _cli(stack, api_key, "similar", job_id, "3", "-k", "3", "--json", cwd=tmp_path)
    assert similar.returncode == 0, similar.stderr
    with Client(stack.url, api_key=api_key) as api:
        assert [r["index"] for r in json.loads(similar.stdout)] == list(api.similar(job_id, 3, k=3)["index"])


def test_cli_submit_json_wait_and_documented_exit_codes(stack, api_key, tmp_path):
    photos = write_photos(tmp_path / "in", 2)
    submitted = _cli(stack, api_key, "submit", str(tmp_path / "in"), "--json", "--wait", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["counts"]["total"] == len(photos) and "completed" in submitted.stderr

    wrong_key = _cli(stack, "wrong-key", "status", job["id"], cwd=tmp_path)
    assert wrong_key.returncode == 6 and wrong_key.stderr.count("\n") == 1 and "API key" in wrong_key.stderr
    missing = _cli(stack, api_key, "status", "0" * 32, "--json", cwd=tmp_path)
    assert missing.returncode == 4 and "not found" in missing.stderr
    env = {**os.environ, "IMAGEBATCH_API_URL": "http://127.0.0.1:9"}
    down = subprocess.run([str(BIN / "imagebatch"), "list"], env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 3 and "cannot reach" in down.stderr


def test_shell_completion_is_offered(tmp_path):
    env = {**os.environ, "_IMAGEBATCH_COMPLETE": "complete_bash", "COMP_WORDS": "imagebatch sim", "COMP_CWORD": "1"}
    completed = subprocess.run([str(BIN / "imagebatch")], env=env, capture_output=True, text=True, timeout=60)
    assert completed.stdout.split() == ["similar"]


def test_uploaded_bytes_never_render_as_a_document(client, tmp_path):
    photo = write_photos(tmp_path, 1)[0]
    files = [
        ("files", (photo.name, photo.read_bytes())),
        ("files", ("page.html", b"<html><script>localStorage.clear()</script></html>")),
    ]
    response = client.post("/v1/jobs", files=files)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    served = client.get(f"/v1/jobs/{job_id}/images/1/content")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"].startswith("sandbox")
    client.delete(f"/v1/jobs/{job_id}")
