"""Test helper run in a fresh process (settings come from its environment): what each view makes of job options.

Usage: python options_views.py OPTIONS.json, where OPTIONS.json holds one value per job option.
Submits four jobs to the real app (multipart and JSON, with those options and with none), then
reads each back through the worker's claim; prints one JSON object:
  openapi: {media type: {"properties": [...], "defaults": {...}, "top_k_maximum": n}} of POST /v1/jobs,
  worker: {"form" | "json" | "form_defaults" | "json_defaults": the options the worker reads},
  unknown_field: the 422 detail for a multipart field that is no option.
Before the worker reads, the settings are tightened (private callback hosts refused, MAX_TOP_K 1):
the worker must read what submission validated, not validate again.
"""

import json
import sys
from pathlib import Path

from fastapi.testclient import TestClient


def _form(options: dict) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}


def _submit(client: TestClient, options: dict) -> dict[str, str]:
    """Job ids of a multipart and a JSON submission with these options."""
    upload = [("files", ("a.jpg", b"not decoded at submission", "image/jpeg"))]
    ids = {}
    for body, kwargs in (
        ("form", {"files": upload, "data": _form(options)}),
        ("json", {"json": {"uris": ["https://images.example.com/a.jpg"], **options}}),
    ):
        response = client.post("/v1/jobs", **kwargs)
        assert response.status_code == 202, response.text
        ids[body] = response.json()["id"]
    return ids


def _openapi(client: TestClient) -> dict:
    body = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    return {
        media: {
            "properties": list(schema["schema"]["properties"]),
            "defaults": {k: p["default"] for k, p in schema["schema"]["properties"].items() if "default" in p},
            "top_k_maximum": schema["schema"]["properties"]["top_k"].get("maximum"),
        }
        for media, schema in body.items()
    }


def main(options_path: str) -> None:
    from imagebatch.api.main import create_app
    from imagebatch.core.config import settings
    from imagebatch.worker import runner

    options = json.loads(Path(options_path).read_text())
    with TestClient(create_app()) as client:  # the lifespan migrates the scratch SQLite database
        ids = _submit(client, options)
        ids.update({f"{body}_defaults": job for body, job in _submit(client, {}).items()})
        unknown = client.post("/v1/jobs", files=[("files", ("a.jpg", b"x"))], data={"colour": "red"})
        openapi = _openapi(client)
    settings.ALLOW_PRIVATE_URLS, settings.MAX_TOP_K = False, 1
    worker = {}
    for view, job_id in ids.items():
        worker[view] = runner.claim(job_id, 0, 1, "options-test").options.model_dump()
    print(json.dumps({"openapi": openapi, "worker": worker, "unknown_field": unknown.json()["detail"]}))


if __name__ == "__main__":
    main(sys.argv[1])
