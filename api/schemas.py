"""Request options and response models of the HTTP API (separate from the table models)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imagebatch.core.catalog import MODELS
from imagebatch.core.config import PRECISIONS, settings
from imagebatch.db.views import JobView


class JobOptions(BaseModel):
    """How to run a job; form fields for multipart submissions, JSON keys otherwise."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default_factory=lambda: settings.DEFAULT_MODEL)
    top_k: int = 5
    store_probabilities: bool = False
    precision: str = Field(default_factory=lambda: settings.DEFAULT_PRECISION)
    # POSTed once (HMAC-signed) when the job reaches a final state.
    callback_url: str | None = None

    @field_validator("callback_url")
    @classmethod
    def _safe_callback(cls, value: str | None) -> str | None:
        from imagebatch.core.webhooks import UnsafeUrl, check_callback_url

        if not value:
            return None
        try:
            return check_callback_url(value)
        except UnsafeUrl as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"must be one of {', '.join(MODELS)} (got {value!r})")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k_in_range(cls, value: int) -> int:
        if not 1 <= value <= settings.MAX_TOP_K:
            raise ValueError(f"must be between 1 and {settings.MAX_TOP_K} (got {value})")
        return value

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, value: str) -> str:
        if value not in PRECISIONS:
            raise ValueError(f"must be one of {', '.join(PRECISIONS)} (got {value!r})")
        return value


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
    401: "Missing, invalid or revoked API key", 413: "Request or job over a size limit (named)",
    429: "Tenant limit reached (named); retry after Retry-After seconds",
    404: "Job not found", 409: "Conflict with the job's state", 415: "Unsupported content type",
    422: "Invalid request (the message names the field)", 503: "Database or broker unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the {"detail": "..."} errors a route can answer with."""
    return {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]} for code in codes}
