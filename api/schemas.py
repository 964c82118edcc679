"""Request and response schemas of the HTTP API (separate from the table models)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from imagebatch.core.options import JobOptions
from imagebatch.db.views import JobView


def describe_validation_error(exc: ValidationError | Any) -> str:
    """One readable line per problem, each naming the field ("top_k: must be between ...")."""
    parts = []
    for err in exc.errors():
        # FastAPI prefixes the location with where the value came from (query, path, body).
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown option"
        parts.append(f"{'.'.join(loc) or 'request'}: {message}")
    return "; ".join(parts) or "invalid request"


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: str | None


class TopKEntry(BaseModel):
    index: int
    label: str
    probability: float


class ErrorInfo(BaseModel):
    category: str | None
    message: str | None


class ResultItem(BaseModel):
    index: int
    source: str
    true_label: str | None = None  # an evaluation image's class; null otherwise
    status: str
    error: ErrorInfo | None
    width: int | None
    height: int | None
    mode: str | None
    format: str | None
    channel_mean: list[float] | None
    channel_std: list[float] | None
    top_k: list[TopKEntry] | None
    top1_label: str | None
    confidence: float | None
    top5_mean: float | None
    margin: float | None
    entropy: float | None
    processed_at: datetime | None
    # Present only when asked for with ?include=embedding,probabilities.
    embedding: list[float] | None = None
    probabilities: list[float] | None = None


class ResultPage(BaseModel):
    items: list[ResultItem]
    next_cursor: str | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    broker: str


class ErrorOut(BaseModel):
    detail: str


_ERROR_TEXT = {
    400: "Malformed request: a cursor this API did not hand out, a broken multipart body (the message says what)",
    401: "Missing, invalid or revoked API key",
    413: "Request or job over a size limit (named)",
    429: "Tenant limit reached (named); retry after Retry-After seconds",
    404: "Job, training job or model not found",
    408: "The request body stalled (nothing received for IMAGEBATCH_UPLOAD_IDLE_TIMEOUT seconds)",
    409: "Conflict with the job's state (or a model still in use)",
    415: "Unsupported content type",
    422: "Invalid request (the message names the field)",
    503: "Database or broker unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the {"detail": "..."} errors a route can answer with."""
    return {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]} for code in codes}


BINARY = {"type": "string", "format": "binary"}
TEXT = {"type": "string"}


def content_response(description: str, schema: dict[str, Any], *media_types: str) -> dict[str, Any]:
    """An OpenAPI response whose body is not JSON: a file (BINARY) or text (TEXT) in these media types."""
    return {"description": description, "content": {media: {"schema": schema} for media in media_types}}


def submit_request_body() -> dict[str, Any]:
    """POST /v1/jobs's two bodies: the images (parts or a URI list) beside every option of JobOptions."""
    options = JobOptions.model_json_schema()["properties"]
    form = {
        "files": {"type": "array", "items": BINARY, "description": "the images, one part each"},
        "archive": {**BINARY, "description": ".zip, .tar, .tar.gz or .tgz; images at any depth"},
    }
    uris = {
        "uris": {
            "type": "array",
            "items": {"type": "string"},
            "description": "absolute paths or file:// URIs under an allowed root, or http(s) URLs",
        }
    }
    # Not marked required although it is (without one the answer is 415): openapi-python-client
    # 0.28-0.29 writes uncompilable code for a required body with two media types (its issue #1451).
    return {
        "requestBody": {
            "required": False,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "additionalProperties": False, "properties": {**form, **options}}
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["uris"],
                        "properties": {**uris, **options},
                    }
                },
            },
        }
    }


def labelled_request_body(
    options: type[BaseModel], required: tuple[str, ...] = (), archive_note: str = ""
) -> dict[str, Any]:
    """The two bodies of a labelled set (training, evaluation): an ImageFolder `archive` beside the
    option fields, or JSON `uris` with one `labels` entry each beside the option keys."""
    properties = options.model_json_schema()["properties"]
    archive = {
        **BINARY,
        "description": ".zip, .tar, .tar.gz or .tgz in ImageFolder layout: one folder per class, "
        "images at any depth below it" + archive_note,
    }
    uris = {
        "uris": {"type": "array", "items": {"type": "string"}, "description": "paths under an allowed root, or URLs"},
        "labels": {"type": "array", "items": {"type": "string"}, "description": "the class of each uri, in order"},
    }
    return {
        "requestBody": {
            "required": False,  # see submit_request_body
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["archive", *required],
                        "properties": {"archive": archive, **properties},
                    }
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["uris", "labels", *required],
                        "properties": {**uris, **properties},
                    }
                },
            },
        }
    }
