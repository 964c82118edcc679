"""API keys and tenants on a real API process: 401 without a key, 404 across tenants, CLI admin."""

import io
import json
import uuid

from tests.harness.images import photo
from tests.system.security.conftest import run_cli


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(64, 48, seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def _submit(client, n: int = 1) -> dict:
    files = [("files", (f"{i}.jpg", _jpeg(i))) for i in range(n)]
    response = client.post("/v1/jobs", files=files)
    assert response.status_code == 202, response.text
    return response.json()


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_v1_needs_a_valid_key_and_health_stays_open(api_only, client_for, api_key):
    anonymous = client_for(None)
    for method, path in [
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/abc"),
        ("GET", "/v1/jobs/abc/results"),
        ("GET", "/v1/jobs/abc/results.csv"),
        ("POST", "/v1/jobs/abc/cancel"),
        ("DELETE", "/v1/jobs/abc"),
    ]:
        response = anonymous.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "API key" in response.json()["detail"]
    for bad in ("nonsense", "ib_" + "x" * 43):
        assert client_for(bad).get("/v1/jobs").status_code == 401
    basic = anonymous.get("/v1/jobs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    for path in ("/healthz", "/readyz", "/metrics"):
        assert anonymous.get(path).status_code == 200, path
    assert client_for(api_key(_tenant())).get("/v1/jobs").status_code == 200


def test_another_tenants_job_is_not_found(client_for, api_key):
    alice, bob = client_for(api_key(_tenant())), client_for(api_key(_tenant()))
    job = _submit(alice, 2)
    path = f"/v1/jobs/{job['id']}"
    for method, suffix in [
        ("GET", ""),
        ("GET", "/results"),
        ("GET", "/results.csv"),
        ("POST", "/cancel"),
        ("DELETE", ""),
    ]:
        response = bob.request(method, path + suffix)
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["detail"] == "Job not found"  # the same answer as for no job at all
    assert job["id"] not in {j["id"] for j in bob.get("/v1/jobs").json()["items"]}
    # Bob's attempts changed nothing: Alice still sees her job, queued, and can cancel and delete it.
    assert alice.get(path).json()["state"] == "queued"
    assert job["id"] in {j["id"] for j in alice.get("/v1/jobs").json()["items"]}
    assert alice.get(path + "/results").status_code == 200
    assert alice.post(path + "/cancel").json()["state"] == "cancelled"
    assert alice.delete(path).status_code == 204


def test_lists_show_only_the_tenants_jobs(client_for, api_key):
    key = api_key(_tenant())
    mine = client_for(key)
    ids = {_submit(mine)["id"] for _ in range(2)}
    other = client_for(api_key(_tenant()))
    _submit(other)
    assert {j["id"] for j in mine.get("/v1/jobs").json()["items"]} == ids
    for job_id in ids:
        mine.delete(f"/v1/jobs/{job_id}")


def test_cli_creates_lists_and_revokes_keys(api_only, client_for):
    tenant = _tenant()
    created = run_cli(api_only.env, "keys", "create", "--tenant", tenant, "--name", "ci")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("ib_") and len(secret) > 40
    client = client_for(secret)
    assert client.get("/v1/jobs").status_code == 200
    listed = run_cli(api_only.env, "keys", "list", "--tenant", tenant, "--json")
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout  # only the hash is stored, and never printed again
    (row,) = json.loads(listed.stdout)
    assert (row["tenant"], row["name"], row["revoked_at"]) == (tenant, "ci", None)
    revoked = run_cli(api_only.env, "keys", "revoke", str(row["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/v1/jobs").status_code == 401
    again = run_cli(api_only.env, "keys", "revoke", str(row["id"]))
    assert again.returncode == 4 and "no active key" in again.stderr


def test_the_database_holds_only_the_hash(api_database_url, api_key):
    import hashlib

    from sqlalchemy import create_engine, text

    secret = api_key(_tenant())
    engine = create_engine(api_database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT hash FROM api_keys")).scalars().all()
    engine.dispose()
    assert hashlib.sha256(secret.encode()).hexdigest() in rows
    assert all(secret not in value for value in rows)


def test_cli_client_sends_the_key(api_only, api_key):
    env = {**api_only.env, "IMAGEBATCH_API_URL": api_only.url}
    refused = run_cli(env, "list")
    assert refused.returncode != 0 and "API key" in refused.stderr, refused.stderr
    secret = api_key(_tenant())
    assert run_cli(env, "--api-key", secret, "list").returncode == 0
    assert run_cli({**env, "IMAGEBATCH_API_KEY": secret}, "list").returncode == 0
