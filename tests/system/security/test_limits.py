"""Per-tenant limits (429 + Retry-After) and job/request size limits (413 naming the limit)."""

import os
import uuid

from tests.system.security.conftest import LIMITS
from tests.system.security.test_auth import _jpeg, _submit


def _tenant_client(client_for, api_key):
    return client_for(api_key(f"lim-{uuid.uuid4().hex[:8]}"))


def test_active_jobs_per_tenant(client_for, api_key):
    alice, bob = _tenant_client(client_for, api_key), _tenant_client(client_for, api_key)
    most = int(LIMITS["IMAGEBATCH_MAX_ACTIVE_JOBS_PER_TENANT"])
    jobs = [_submit(alice) for _ in range(most)]
    refused = alice.post("/v1/jobs", files=[("files", ("x.jpg", _jpeg(1)))])
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert "MAX_ACTIVE_JOBS_PER_TENANT" in refused.json()["detail"]
    assert _submit(bob)["state"] == "queued"  # one tenant's limit is not another's
    alice.post(f"/v1/jobs/{jobs[0]['id']}/cancel")
    assert _submit(alice)["state"] == "queued"  # a finished job frees its slot


def test_images_in_flight_per_tenant(client_for, api_key):
    alice = _tenant_client(client_for, api_key)
    most = int(LIMITS["IMAGEBATCH_MAX_IMAGES_IN_FLIGHT_PER_TENANT"])
    first = _submit(alice, most - 2)
    refused = alice.post("/v1/jobs", files=[("files", (f"{i}.jpg", _jpeg(i))) for i in range(3)])
    assert refused.status_code == 429, refused.text
    assert "MAX_IMAGES_IN_FLIGHT_PER_TENANT" in refused.json()["detail"] and refused.headers["retry-after"]
    assert _submit(alice, 2)["counts"]["total"] == 2  # exactly up to the limit is fine
    refused = alice.post("/v1/jobs", files=[("files", ("x.jpg", _jpeg(1)))])
    assert refused.status_code == 429  # now full: even one more image waits
    alice.post(f"/v1/jobs/{first['id']}/cancel")
    assert _submit(alice, 3)["counts"]["total"] == 3


def test_too_many_images_in_one_job(client_for, api_key, uri_root):
    alice = _tenant_client(client_for, api_key)
    most = int(LIMITS["IMAGEBATCH_MAX_IMAGES_PER_JOB"])
    files = [("files", (f"{i}.jpg", _jpeg(i))) for i in range(most + 1)]
    response = alice.post("/v1/jobs", files=files)
    assert response.status_code == 413 and "MAX_IMAGES_PER_JOB" in response.json()["detail"], response.text
    uris = [str(uri_root / f"{i}.jpg") for i in range(most + 1)]
    response = alice.post("/v1/jobs", json={"uris": uris})
    assert response.status_code == 413 and "MAX_IMAGES_PER_JOB" in response.json()["detail"], response.text
    assert alice.get("/v1/jobs").json()["items"] == []  # nothing half-created


def test_oversize_request_is_413_with_or_without_content_length(client_for, api_key):
    alice = _tenant_client(client_for, api_key)
    limit = int(LIMITS["IMAGEBATCH_MAX_UPLOAD_BYTES"])
    big = os.urandom(limit + 1024)
    response = alice.post("/v1/jobs", files=[("files", ("big.jpg", big))])
    assert response.status_code == 413 and "MAX_UPLOAD_BYTES" in response.json()["detail"]

    def chunked():  # no Content-Length: the API must count as it reads
        yield b'{"uris": ["' + b"a" * (limit + 10) + b'"]}'

    response = alice.post("/v1/jobs", content=chunked(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert alice.get("/v1/jobs").json()["items"] == []
