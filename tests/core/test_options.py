"""JobOptions is the one definition of job options: every view (form, JSON, OpenAPI, worker, client) follows it."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from imagebatch.client import Client
from imagebatch.core.config import settings
from imagebatch.core.options import JobOptions
from tests.harness.services import clean_env

VIEWS = Path(__file__).with_name("options_views.py")
NAMES = list(JobOptions.model_fields)
# Loopback is allowed in test settings (IMAGEBATCH_ALLOW_PRIVATE_URLS), so the callback check runs offline.
GIVEN = {
    "model": "resnet50",
    "top_k": 3,
    "store_probabilities": True,
    "precision": "bf16",
    "decode": "exact",
    "callback_url": "http://127.0.0.1:9/hook",
}


def _views(tmp_path: Path, **env: str) -> dict:
    (tmp_path / "options.json").write_text(json.dumps(GIVEN))
    result = subprocess.run(
        [sys.executable, str(VIEWS), str(tmp_path / "options.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(
            IMAGEBATCH_DATA_DIR=str(tmp_path / "data"), IMAGEBATCH_WEBHOOK_SECRET="options-test-secret", **env
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_given_values_cover_every_option(monkeypatch):
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "options-test-secret")
    assert set(GIVEN) == set(NAMES)
    assert JobOptions.model_validate(GIVEN).model_dump() == GIVEN


def test_every_option_reaches_every_view(tmp_path):
    views = _views(tmp_path)
    assert views["openapi"]["multipart/form-data"]["properties"] == ["files", "archive", *NAMES]
    assert views["openapi"]["application/json"]["properties"] == ["uris", *NAMES]
    assert views["unknown_field"] == (
        f"unknown form field 'colour'; expected one of files, archive, {', '.join(NAMES)}"
    )
    # Parsed from a form and from JSON, stored, and read back by the worker: every value intact,
    # although by then the callback host and top_k would fail the (tightened) submission checks.
    assert views["worker"]["form"] == GIVEN
    assert views["worker"]["json"] == GIVEN


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, {"model": "resnet18", "precision": "auto", "top_k_maximum": 20}),
        (
            {
                "IMAGEBATCH_DEFAULT_MODEL": "resnet50",
                "IMAGEBATCH_DEFAULT_PRECISION": "fp32",
                "IMAGEBATCH_MAX_TOP_K": "7",
            },
            {"model": "resnet50", "precision": "fp32", "top_k_maximum": 7},
        ),
    ],
    ids=["built-in", "from-environment"],
)
def test_defaults_follow_the_settings_in_every_view(tmp_path, env, expected):
    views = _views(tmp_path, **env)
    defaults = {
        "model": expected["model"],
        "top_k": 5,
        "store_probabilities": False,
        "precision": expected["precision"],
        "decode": None,
        "callback_url": None,
    }
    documented = {name: value for name, value in defaults.items() if value is not None}  # FastAPI drops nulls
    for media in ("multipart/form-data", "application/json"):
        assert views["openapi"][media]["defaults"] == documented, media
        assert views["openapi"][media]["top_k_maximum"] == expected["top_k_maximum"], media
    assert views["worker"]["form_defaults"] == defaults
    assert views["worker"]["json_defaults"] == defaults


def test_the_python_client_accepts_every_option():
    parameters = inspect.signature(Client.submit).parameters
    assert set(NAMES) <= {name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"model": "resnet 34"}, "model: must be one of resnet18, resnet50 or a custom model's name: 'resnet 34'"),
        ({"model": "resnet18:2"}, "model: must be one of resnet18, resnet50 or a custom model's name: built-in"),
        ({"top_k": 0}, "top_k: must be between 1 and 20 (got 0)"),
        ({"precision": "fp8"}, "precision: must be one of auto, fp32, bf16, fp16, int8 (got 'fp8')"),
        ({"decode": "sloppy"}, "decode: must be one of fast, exact (got 'sloppy')"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url: must be an http:// or https:// URL"),
        ({"colour": "red"}, "colour: unknown option"),
    ],
)
def test_submission_checks_name_the_field(raw, message, monkeypatch):
    from imagebatch.api.schemas import describe_validation_error

    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "options-test-secret")
    with pytest.raises(ValidationError) as caught:
        JobOptions.model_validate(raw)
    assert describe_validation_error(caught.value).startswith(message)


def test_int8_is_refused_where_the_server_turned_it_off(monkeypatch):
    from imagebatch.api.schemas import describe_validation_error

    assert JobOptions.model_validate({"precision": "int8"}).precision == "int8"
    monkeypatch.setattr(settings, "INT8_ENABLED", False)
    with pytest.raises(ValidationError) as caught:
        JobOptions.model_validate({"precision": "int8"})
    assert "IMAGEBATCH_INT8_ENABLED=false" in describe_validation_error(caught.value)
    assert JobOptions.model_validate({"precision": "bf16"}).precision == "bf16"


@pytest.mark.parametrize(
    "url",
    ["http://[::1/", "https://[zz]/", "https://hooks.example.com:99999/x", "https://hooks.example.com:abc/"],
)
def test_a_malformed_callback_url_names_the_field(url, monkeypatch):
    from imagebatch.api.schemas import describe_validation_error

    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "options-test-secret")
    with pytest.raises(ValidationError) as caught:
        JobOptions.model_validate({"callback_url": url})
    assert describe_validation_error(caught.value).startswith(f"callback_url: {url!r} is not a valid URL")


def test_a_callback_url_needs_the_webhook_secret(monkeypatch):
    """No webhook is ever signed with an empty key: without the secret a callback is refused."""
    from imagebatch.api.schemas import describe_validation_error

    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "")
    with pytest.raises(ValidationError) as caught:
        JobOptions.model_validate({"callback_url": "http://127.0.0.1:9/hook"})
    detail = describe_validation_error(caught.value)
    assert detail.startswith("callback_url: ") and "IMAGEBATCH_WEBHOOK_SECRET is not set" in detail
    assert JobOptions.model_validate({"callback_url": None}).callback_url is None  # no callback: no secret needed
    assert "IMAGEBATCH_WEBHOOK_SECRET" in JobOptions.model_json_schema()["properties"]["callback_url"]["description"]
    monkeypatch.setattr(settings, "WEBHOOK_SECRET", "s3cret")
    assert JobOptions.model_validate({"callback_url": "http://127.0.0.1:9/hook"}).callback_url


def test_a_stored_job_is_read_back_without_checks():
    class Row:  # what a Job row offers: one attribute per option (and more)
        model, top_k, store_probabilities, precision, decode = "resnet999", 10_000, True, "fp8", "fast"
        callback_url, chunk_size = "https://hooks.invalid/done", 32

    options = JobOptions.from_record(Row())
    assert options.model_dump() == {
        "model": "resnet999",
        "top_k": 10_000,
        "store_probabilities": True,
        "precision": "fp8",
        "decode": "fast",
        "callback_url": "https://hooks.invalid/done",
    }


@pytest.mark.parametrize(
    "raw, setting, expected",
    [
        ({"precision": "fp32"}, "fast", "exact"),  # fp32 and nothing said about decoding: torchvision's pixels
        ({"precision": "fp32", "decode": "fast"}, "fast", "fast"),
        ({"precision": "auto"}, "fast", "fast"),
        ({"precision": "bf16"}, "exact", "exact"),
        ({"decode": "exact"}, "fast", "exact"),
        ({}, "fast", "fast"),
    ],
)
def test_the_decode_mode_a_job_gets(raw, setting, expected):
    """The option when given; exact for an fp32 job that says nothing; else IMAGEBATCH_DECODE_MODE."""
    assert JobOptions.model_validate(raw).resolve_decode(setting) == expected
