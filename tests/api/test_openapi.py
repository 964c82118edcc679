"""The OpenAPI document: short operation ids, files and text declared as such, and a generated client that works."""

import importlib
import io
import json
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST

from imagebatch.api.main import create_app

OPERATIONS = {
    "submit_job",
    "list_jobs",
    "get_job",
    "cancel_job",
    "delete_job",
    "list_results",
    "export_results_csv",
    "export_results_parquet",
    "get_job_summary",
    "get_image",
    "get_image_content",
    "get_image_thumbnail",
    "get_image_preview",
    "get_gradcam",
    "find_similar_images",
    "create_training_job",
    "list_training_jobs",
    "get_training_job",
    "cancel_training_job",
    "delete_training_job",
    "list_models",
    "get_model",
    "delete_model",
    "export_model",
    "create_evaluation",
    "get_evaluation",
    "health",
    "ready",
    "metrics",
}
BINARY = {"type": "string", "format": "binary"}
TEXT = {"type": "string"}
PACKAGE = "generated_imagebatch_client"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for item in document["paths"].values() for op in item.values()}


def test_operation_ids_are_the_short_route_names(document):
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert sorted(ids) == sorted(OPERATIONS)


@pytest.mark.parametrize(
    "operation, media_types, schema",
    [
        ("get_image_content", {"image/jpeg", "image/png", "image/webp", "application/octet-stream"}, BINARY),
        ("get_image_thumbnail", {"image/jpeg"}, BINARY),
        ("get_image_preview", {"image/jpeg"}, BINARY),
        ("export_results_parquet", {"application/vnd.apache.parquet"}, BINARY),
        ("export_model", {"application/octet-stream"}, BINARY),
        ("get_gradcam", {"image/png"}, BINARY),
        ("export_results_csv", {"text/csv"}, TEXT),
        ("metrics", {CONTENT_TYPE_LATEST}, TEXT),
    ],
)
def test_files_and_text_are_declared_with_their_schema(document, operation, media_types, schema):
    content = _operations(document)[operation]["responses"]["200"]["content"]
    assert media_types <= set(content)
    assert [entry["schema"] for entry in content.values()] == [schema] * len(content)


def _binary_media_types(document: dict[str, Any]) -> dict[str, str]:
    """Every non-text media type the document declares binary, to be read as bytes.

    The generator knows JSON, text/* and application/octet-stream by itself; others (image/jpeg,
    Parquet) it is told about through its documented `content_type_overrides`.
    """
    return {
        media: "application/octet-stream"
        for op in _operations(document).values()
        for response in op["responses"].values()
        for media, entry in response.get("content", {}).items()
        if entry.get("schema") == BINARY and not media.startswith("text/")
    }


@pytest.fixture(scope="module")
def generation(document, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """openapi-python-client run on the app's own document: (the finished run, the folder holding the package)."""
    root = tmp_path_factory.mktemp("generated-client")
    (root / "openapi.json").write_text(json.dumps(document))
    (root / "config.json").write_text(json.dumps({"content_type_overrides": _binary_media_types(document)}))
    # Its post-hooks format the output with ruff, installed beside it in this environment.
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.json",
            "--meta",
            "none",
            "--output-path",
            PACKAGE,
        ],
        cwd=root,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, root


def test_the_generator_finishes_without_a_warning(generation):
    result, _root = generation
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A skipped response, an unknown media type or a failed ruff hook each add lines here.
    assert output.split() == ["Generating", PACKAGE], output


@pytest.fixture(scope="module")
def package(generation) -> Iterator[ModuleType]:
    result, root = generation
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        yield importlib.import_module(PACKAGE)
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def test_the_generated_package_has_a_module_per_operation(document, package):
    found = {}
    for info in pkgutil.walk_packages(importlib.import_module(f"{PACKAGE}.api").__path__, f"{PACKAGE}.api."):
        found[info.name] = importlib.import_module(info.name)  # every generated module imports
    for operation_id, op in _operations(document).items():
        module = found[f"{PACKAGE}.api.{op['tags'][0]}.{operation_id}"]
        assert callable(module.sync_detailed) and callable(module.asyncio_detailed)
    importlib.import_module(f"{PACKAGE}.models")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_generated_client_submits_and_downloads(package, api):
    """Both bodies, every option, and each file or text answer, through the generated code only."""
    ops = {
        name: importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")
        for tag, name in (
            ("jobs", "submit_job"),
            ("jobs", "get_job"),
            ("images", "get_image_content"),
            ("images", "get_image_thumbnail"),
            ("images", "get_image_preview"),
            ("results", "export_results_csv"),
            ("results", "export_results_parquet"),
            ("health", "metrics"),
        )
    }
    models, types = importlib.import_module(f"{PACKAGE}.models"), importlib.import_module(f"{PACKAGE}.types")
    client = importlib.import_module(f"{PACKAGE}.client").AuthenticatedClient(
        base_url=api.base_url, token="unused: auth is off in this API", raise_on_unexpected_status=True
    )
    png = _png()
    upload = models.SubmitJobFilesBody.from_dict(
        {
            "model": "resnet50",
            "top_k": 3,
            "store_probabilities": True,
            "precision": "fp32",
            "callback_url": "http://127.0.0.1:9/done",
        }
    )
    upload.files = [types.File(payload=io.BytesIO(png), file_name="red.png", mime_type="image/png")]
    job = ops["submit_job"].sync(client=client, body=upload)
    assert (job.model, job.top_k, job.store_probabilities, job.precision, job.counts.total) == (
        "resnet50",
        3,
        True,
        "fp32",
        1,
    )
    assert job.webhook.to_dict()["url"] == "http://127.0.0.1:9/done"
    manifest = models.SubmitJobJsonBody.from_dict({"uris": ["https://images.example.com/a.jpg"], "top_k": 2})
    listed = ops["submit_job"].sync(client=client, body=manifest)
    assert ops["get_job"].sync(listed.id, client=client).top_k == 2

    assert ops["get_image_content"].sync(job.id, 0, client=client).payload.read() == png
    # No worker here: the image is pending, so it has no thumbnail yet, and a PNG is its own preview.
    missing = ops["get_image_thumbnail"].sync(job.id, 0, client=client)
    assert missing.detail == "no thumbnail: the image is pending"
    preview = ops["get_image_preview"].sync_detailed(job.id, 0, client=client)
    assert preview.status_code == 307 and preview.headers["location"] == f"/v1/jobs/{job.id}/images/0/content"
    csv = ops["export_results_csv"].sync(job.id, client=client).splitlines()
    assert len(csv) == 2 and "red.png" in csv[1]  # a header and the (still pending) image
    table = pq.read_table(ops["export_results_parquet"].sync(job.id, client=client).payload)
    assert table.num_rows == 1 and "red.png" in table.to_pylist()[0].values()
    assert "imagebatch_jobs" in ops["metrics"].sync(client=client)
