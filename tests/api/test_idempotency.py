"""Idempotency-Key over real HTTP: the same body gets the first job back; another body is refused (422)."""

import os
import uuid

import pytest

from tests.api.helpers import job_count


def _blob_dirs(api) -> set[str]:
    return {p.name for p in api.blobs.iterdir()} if api.blobs.exists() else set()


def _post_files(api, key: str, files: list[tuple[str, bytes]], **options: str):
    parts = [("files", (name, data, "image/png")) for name, data in files]
    return api.client.post("/v1/jobs", files=parts, data=options, headers={"Idempotency-Key": key})


FILES = [(f"img{i}.png", os.urandom(3000 + i)) for i in range(3)]


def test_the_same_upload_again_gets_the_first_job_and_leaves_no_blobs(api):
    key = f"same-{uuid.uuid4()}"
    first = _post_files(api, key, FILES, top_k="3")
    assert first.status_code == 202, first.text
    blobs, jobs = _blob_dirs(api), job_count(api)
    again = _post_files(api, key, FILES, top_k="3")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
    assert job_count(api) == jobs and _blob_dirs(api) == blobs  # the retry's upload was only compared


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda files, options: ([(n, d + b"!") for n, d in files], options), id="other bytes"),
        pytest.param(lambda files, options: ([("other.png", files[0][1]), *files[1:]], options), id="other name"),
        pytest.param(lambda files, options: (files[:2], options), id="fewer files"),
        pytest.param(lambda files, options: (files, {**options, "top_k": "4"}), id="other option"),
    ],
)
def test_the_same_key_with_another_upload_is_422_naming_the_key(api, change):
    key = f"other-{uuid.uuid4()}"
    options = {"top_k": "3"}
    first = _post_files(api, key, FILES, **options)
    assert first.status_code == 202, first.text
    blobs, jobs = _blob_dirs(api), job_count(api)
    files, changed = change(FILES, options)
    refused = _post_files(api, key, files, **changed)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert key in detail and first.json()["id"] in detail and "different request" in detail
    assert job_count(api) == jobs and _blob_dirs(api) == blobs


def test_uri_lists_compare_by_uri_and_by_the_options_as_validated(api):
    key, uris = f"uris-{uuid.uuid4()}", [f"https://images.example.com/{i}.jpg" for i in range(3)]
    headers = {"Idempotency-Key": key}
    first = api.client.post("/v1/jobs", json={"uris": uris}, headers=headers)
    assert first.status_code == 202, first.text
    # top_k 5 is the default: the same request spelled out.
    same = api.client.post("/v1/jobs", json={"uris": uris, "top_k": 5}, headers=headers)
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"], same.text
    other = api.client.post("/v1/jobs", json={"uris": uris[::-1]}, headers=headers)
    assert other.status_code == 422 and key in other.json()["detail"], other.text
