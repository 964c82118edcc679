"""Results and CSV export over real HTTP, against rows written directly as a worker would."""

import base64
import csv
import io
import json

import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from imagebatch.db.models import Image
from tests.api.helpers import LABELS, image_rows, submit_uris, write_results

STATUSES = ["ok"] * 6 + ["error", "cancelled", "pending"]
TOP_K = 3


def _finished_job(api, seed: int = 1) -> tuple[str, list]:
    job = submit_uris(
        api, [f"https://example.com/{i}.jpg" for i in range(len(STATUSES))], top_k=TOP_K, store_probabilities=True
    )
    # Image 2's top-1 is the first of the two "crane" classes.
    expected = write_results(api, job["id"], STATUSES, top_k=TOP_K, seed=seed, boost={2: 10})
    return job["id"], expected


@pytest.fixture(scope="module")
def finished(api):
    return _finished_job(api)


def _all_pages(api, job_id: str, **params) -> tuple[list[dict], int]:
    items, cursor, pages = [], None, 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.client.get(f"/v1/jobs/{job_id}/results", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_pages_cover_every_image_once_with_exact_values(api, finished):
    job_id, expected = finished
    items, pages = _all_pages(api, job_id, limit=4)
    assert pages == 3 and [item["index"] for item in items] == list(range(9))
    rows = image_rows(api, job_id)
    for item, exp, row in zip(items, expected, rows, strict=True):
        assert item["status"] == exp.status and item["source"] == row.source
        assert "embedding" not in item and "probabilities" not in item
        if exp.status != "ok":
            assert item["top_k"] is None and item["confidence"] is None
            continue
        assert item["confidence"] == pytest.approx(float(exp.probs.max()), rel=1e-6)
        assert [t["index"] for t in item["top_k"]] == exp.top[:TOP_K]
        assert [t["label"] for t in item["top_k"]] == [LABELS[i] for i in exp.top[:TOP_K]]
        assert item["top1_label"] == LABELS[int(exp.probs.argmax())]
        assert item["entropy"] == pytest.approx(exp.entropy, rel=1e-9)
        assert item["channel_mean"] == [row.mean_r, row.mean_g, row.mean_b]
        assert (item["width"], item["height"], item["mode"], item["format"]) == (64, 48, "RGB", "JPEG")
        assert item["processed_at"].endswith("Z") and item["error"] is None
    assert items[6]["error"] == {"category": "unreadable", "message": "cannot identify image file"}


def _indices(api, job_id: str, **params) -> list[int]:
    items, _ = _all_pages(api, job_id, limit=1000, **params)
    return [item["index"] for item in items]


def test_filters(api, finished):
    job_id, expected = finished
    ok = [i for i, e in enumerate(expected) if e.status == "ok"]
    confidences = {i: expected[i].confidence for i in ok}
    entropies = {i: expected[i].entropy for i in ok}
    threshold = sorted(confidences.values())[3]
    assert _indices(api, job_id, label="crane") == [2]
    assert _indices(api, job_id, min_confidence=threshold) == sorted(i for i in ok if confidences[i] >= threshold)
    assert _indices(api, job_id, max_confidence=threshold) == sorted(i for i in ok if confidences[i] <= threshold)
    cut = sorted(entropies.values())[2]
    assert _indices(api, job_id, max_entropy=cut) == sorted(i for i in ok if entropies[i] <= cut)
    assert _indices(api, job_id, status="ok") == ok
    assert _indices(api, job_id, status="error") == [6] == _indices(api, job_id, errors_only=True)
    assert _indices(api, job_id, status="cancelled") == [7]
    assert _indices(api, job_id, status="pending") == [8]
    assert _indices(api, job_id, status="ok", errors_only=True) == []
    assert _indices(api, job_id, label="crane", status="error") == []
    assert _indices(api, job_id, status="", label="") == list(range(9))


def test_include_embedding_and_probabilities(api, finished):
    job_id, expected = finished
    items, _ = _all_pages(api, job_id, limit=2, include="embedding,probabilities")
    for item, exp in zip(items, expected, strict=True):
        if exp.status == "ok":
            assert item["embedding"] == exp.embedding.astype(np.float64).tolist()  # float16, exactly
            assert item["probabilities"] == exp.probs.astype(np.float64).tolist()  # float32, exactly
            assert len(item["probabilities"]) == 1000
        else:
            assert item["embedding"] is None and item["probabilities"] is None
    only = api.client.get(f"/v1/jobs/{job_id}/results", params={"include": "embedding", "limit": 1}).json()
    assert "embedding" in only["items"][0] and "probabilities" not in only["items"][0]


def test_cursor_is_stable_under_concurrent_writes(api):
    job_id, _ = _finished_job(api, seed=2)
    first = api.client.get(f"/v1/jobs/{job_id}/results", params={"status": "ok", "limit": 3}).json()
    assert [i["index"] for i in first["items"]] == [0, 1, 2]
    # A worker finishes image 8 and an earlier image changes while the client pages.
    with Session(api.engine) as session:
        session.execute(update(Image).where(Image.job_id == job_id, Image.idx == 8).values(status="ok"))
        session.execute(update(Image).where(Image.job_id == job_id, Image.idx == 0).values(status="error"))
        session.commit()
    second = api.client.get(
        f"/v1/jobs/{job_id}/results", params={"status": "ok", "limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert [i["index"] for i in second["items"]] == [3, 4, 5]
    third = api.client.get(
        f"/v1/jobs/{job_id}/results", params={"status": "ok", "limit": 3, "cursor": second["next_cursor"]}
    ).json()
    assert [i["index"] for i in third["items"]] == [8] and third["next_cursor"] is None


def _csv(api, job_id: str, **params) -> tuple[list[str], list[list[str]], dict]:
    response = api.client.get(f"/v1/jobs/{job_id}/results.csv", params=params)
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    return rows[0], rows[1:], response.headers


def test_csv_columns_and_values(api, finished):
    job_id, expected = finished
    header, rows, headers = _csv(api, job_id)
    assert headers["content-disposition"] == f'attachment; filename="{job_id}.csv"'
    assert headers["content-type"].startswith("text/csv")
    assert header[:5] == ["index", "source", "status", "error_category", "error_message"]
    assert header[15:19] == ["confidence", "top5_mean", "margin", "entropy"]
    assert len(header) == len(set(header)), "CSV column names must be unique"
    assert header[19:] == [f"top{i}_{c}" for i in range(1, TOP_K + 1) for c in ("label", "index", "probability")]
    assert [int(r[0]) for r in rows] == list(range(9))
    col = {name: j for j, name in enumerate(header)}
    for row, exp in zip(rows, expected, strict=True):
        assert row[col["status"]] == exp.status
        if exp.status != "ok":
            assert row[col["confidence"]] == "" and row[col["top1_label"]] == ""
            continue
        p = exp.probs.astype(np.float64)
        assert float(row[col["confidence"]]) == pytest.approx(p[exp.top[0]], rel=1e-6)
        assert float(row[col["top5_mean"]]) == pytest.approx(p[exp.top].mean(), rel=1e-6)
        assert float(row[col["margin"]]) == pytest.approx(p[exp.top[0]] - p[exp.top[1]], rel=1e-5, abs=1e-9)
        assert float(row[col["entropy"]]) == pytest.approx(-(p * np.log(p)).sum(), rel=1e-6)
        for i in range(TOP_K):
            assert row[col[f"top{i + 1}_label"]] == LABELS[exp.top[i]]
            assert int(row[col[f"top{i + 1}_index"]]) == exp.top[i]
    assert rows[6][col["error_category"]] == "unreadable"
    _, ok_rows, _ = _csv(api, job_id, status="ok", min_confidence=0.0)
    assert [int(r[0]) for r in ok_rows] == [0, 1, 2, 3, 4, 5]


def test_csv_with_probability_columns(api, finished):
    job_id, expected = finished
    header, rows, _ = _csv(api, job_id, probabilities="true")
    names = header[-1000:]
    assert names[:3] == ["p_class0", "p_class1", "p_class2"]
    assert names[10] == "p_crane_10" and names[20] == "p_crane_20" and len(set(names)) == 1000
    for row, exp in zip(rows, expected, strict=True):
        cells = row[-1000:]
        if exp.status == "ok":
            # Every probability round-trips to the stored float32 exactly.
            assert np.array_equal(np.array([np.float32(float(c)) for c in cells]), exp.probs)
        else:
            assert cells == [""] * 1000


def test_csv_probabilities_need_stored_probabilities(api):
    job = submit_uris(api, ["https://example.com/x.jpg"], store_probabilities=False)
    response = api.client.get(f"/v1/jobs/{job['id']}/results.csv", params={"probabilities": "true"})
    assert response.status_code == 409 and "store_probabilities" in response.json()["detail"]


def test_large_job_streams_csv_and_pages_json(api):
    n = 1100
    job = submit_uris(api, [f"https://example.com/big/{i}.jpg" for i in range(n)], top_k=1)
    with Session(api.engine) as session:
        session.execute(
            update(Image)
            .where(Image.job_id == job["id"], Image.idx % 3 == 0)
            .values(status="ok", top1_label="tabby", confidence=0.75)
        )
        session.commit()
    header, rows, _ = _csv(api, job["id"])
    assert [int(r[0]) for r in rows] == list(range(n))
    assert len(header) == 19 + 3
    _, tabby, _ = _csv(api, job["id"], label="tabby")
    assert [int(r[0]) for r in tabby] == list(range(0, n, 3))
    items, pages = _all_pages(api, job["id"], limit=1000)
    assert pages == 2 and [i["index"] for i in items] == list(range(n))


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"max_entropy": -1}, "max_entropy"),
        ({"status": "done"}, "status"),
        ({"include": "embedding,pixels"}, "include"),
        ({"errors_only": "perhaps"}, "errors_only"),
        ({"label": "tabby\x00"}, "label"),  # PostgreSQL refuses NUL in a string: never sent to it
    ],
)
def test_bad_result_parameters_are_422(api, finished, params, fragment):
    job_id, _ = finished
    response = api.client.get(f"/v1/jobs/{job_id}/results", params=params)
    assert response.status_code == 422 and response.json()["detail"].startswith(fragment), response.text


def _b64(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


TAMPERED_RESULT_CURSORS = [
    _b64({"after": True}),  # a bool is no index (PostgreSQL: ArgumentError)
    _b64({"after": 2147483648}),  # past the INTEGER column (PostgreSQL: NumericValueOutOfRange)
    _b64({"after": -(2**70)}),
    _b64({"after": -2}),
    _b64({"after": 1.5}),
    _b64({"after": "3"}),
    _b64({"after": None}),
    _b64({"after": 1, "extra": 2}),
    _b64({}),
    _b64([1]),
    _b64({"c": "2026-01-01T00:00:00+00:00", "i": "a" * 32}),  # a job-list cursor
    base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
    "not-a-cursor!",
    "%00",
    "A" * 5000,
]


@pytest.mark.parametrize("cursor", TAMPERED_RESULT_CURSORS)
def test_a_tampered_cursor_is_400_naming_the_cursor(api, finished, cursor):
    job_id, _ = finished
    response = api.client.get(f"/v1/jobs/{job_id}/results", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("cursor: "), response.text


def test_results_of_unknown_job_are_404(api):
    for path in ("/v1/jobs/missing/results", "/v1/jobs/missing/results.csv"):
        response = api.client.get(path)
        assert response.status_code == 404 and response.json() == {"detail": "Job not found"}
