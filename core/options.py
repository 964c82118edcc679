"""Job options: the one definition of what a submission may set, read by the API, its OpenAPI body and the worker."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imagebatch.core.catalog import MODEL_NAMES, parse_model_ref
from imagebatch.core.config import settings

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# The JSON schema is made when asked for, so its defaults and limits follow the settings.
def _model_schema(schema: dict[str, Any]) -> None:
    # Custom models (name or name:version) are open-ended: the built-in names are examples, not an enum.
    schema.update(examples=[*MODEL_NAMES, "my-model", "my-model:2"], default=settings.DEFAULT_MODEL)


def _top_k_schema(schema: dict[str, Any]) -> None:
    schema.update(minimum=1, maximum=settings.MAX_TOP_K)


def _precision_schema(schema: dict[str, Any]) -> None:
    schema.update(enum=list(PRECISIONS), default=settings.DEFAULT_PRECISION)


class JobOptions(BaseModel):
    """How to run a job: form fields of a multipart submission, keys of a JSON one, columns of the job row.

    `model_validate` checks a submission (the callback URL's host is resolved); `from_record`
    reads a stored job back without checking again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        default_factory=lambda: settings.DEFAULT_MODEL,
        json_schema_extra=_model_schema,
        description="a built-in ResNet (resnet18, resnet50), or a custom model: its name (the latest version) "
        "or name:version; IMAGEBATCH_DEFAULT_MODEL when omitted",
    )
    top_k: int = Field(
        default=5,
        json_schema_extra=_top_k_schema,
        description="predictions kept per image, best first (at most IMAGEBATCH_MAX_TOP_K)",
    )
    store_probabilities: bool = Field(
        default=False, description="also store all 1000 class probabilities (CSV export with ?probabilities=true)"
    )
    precision: str = Field(
        default_factory=lambda: settings.DEFAULT_PRECISION,
        json_schema_extra=_precision_schema,
        description="inference precision; auto picks bf16 or fp16 where the device runs it fast",
    )
    callback_url: str | None = Field(
        default=None, description="http(s) URL POSTed once (HMAC-signed) when the job reaches a final state"
    )

    @classmethod
    def from_record(cls, record: object) -> "JobOptions":
        """The options of a stored job (any object with one attribute per option), as submitted.

        They were validated at submission: nothing runs again (no DNS lookup of the callback
        host, no MAX_TOP_K lowered since), so reading a job back never fails or blocks.
        """
        return cls.model_construct(**{name: getattr(record, name) for name in cls.model_fields})

    @field_validator("callback_url")
    @classmethod
    def _safe_callback(cls, value: str | None) -> str | None:
        # Imported on use: core.webhooks reaches into db, which this bottom-layer module must not load.
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
        # The spelling only: whether a custom model exists is the API's question (it has the registry).
        try:
            return str(parse_model_ref(value))
        except ValueError as exc:
            raise ValueError(f"must be one of {', '.join(MODEL_NAMES)} or a custom model's name: {exc}") from exc

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
