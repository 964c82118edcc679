"""Exports and Grad-CAM maps keep to their tenant: another tenant's custom model and job are not found, and
nothing is built for a request without a key (a worker-less API: builds stay pending)."""

import uuid

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from imagebatch.db import lifecycle
from tests.system.security.test_auth import _submit


def _register(database_url: str, tenant: str, name: str) -> None:
    model = lifecycle.NewModel(
        name=name,
        base_model="resnet18",
        mode="transfer",
        classes=["cat", "dog"],
        metrics={},
        weights_sha256="0" * 64,
        weights_key=f"models/{tenant}/{name}/run/model.pt",
        meta={},
    )
    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            lifecycle.register_model(session=session, tenant=tenant, model=model)
    finally:
        engine.dispose()


def test_another_tenants_model_and_job_are_not_found(api_database_url, client_for, api_key):
    alice_tenant = f"t-{uuid.uuid4().hex[:8]}"
    alice, bob = client_for(api_key(alice_tenant)), client_for(api_key(f"t-{uuid.uuid4().hex[:8]}"))
    _register(api_database_url, alice_tenant, "secretnet")
    pending = alice.get("/v1/models/secretnet/export", params={"format": "torchscript"})
    assert pending.status_code == 202 and pending.headers["Retry-After"], pending.text
    assert pending.headers["Location"] == "/v1/models/secretnet/export?format=torchscript"
    assert bob.get("/v1/models/secretnet/export").status_code == 404
    assert bob.get("/v1/models/secretnet:1/export").status_code == 404
    assert bob.get("/v1/models/resnet18/export").status_code == 202  # built-in models are everyone's
    assert client_for(None).get("/v1/models/resnet18/export").status_code == 401
    job = _submit(alice, 1)  # stays queued: nobody classifies it
    gradcam = f"/v1/jobs/{job['id']}/images/0/gradcam"
    queued = alice.get(gradcam)
    assert queued.status_code == 409 and "pending" in queued.json()["detail"], queued.text
    assert bob.get(gradcam).status_code == 404
    assert client_for(None).get(gradcam).status_code == 401
