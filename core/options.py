"""Job options: the one definition of what a submission may set, read by the API, its OpenAPI body and the worker."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imagebatch.core.catalog import MODEL_NAMES, parse_model_ref
from imagebatch.core.config import DECODE_MODES, settings

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


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
        description="inference precision; auto picks bf16 or fp16 where the device runs it fast (never int8); "
        "int8: post-training static quantization on the CPU (IMAGEBATCH_INT8_ENGINE, calibrated on a fixed, "
        "recorded image set; results differ slightly from fp32)",
    )
    decode: Literal["fast", "exact"] | None = Field(
        default=None,
        description="exact: torchvision's preprocessing bit for bit; fast: libjpeg-turbo decode, large images "
        "reduced while their short side stays >= 2.25x the resize size, and only the cropped region is resized "
        "(about twice the decode speed, slightly different numbers). "
        "Omitted: exact when precision is fp32, else IMAGEBATCH_DECODE_MODE",
    )
    callback_url: str | None = Field(
        default=None,
        description=(
            "http(s) URL POSTed once (HMAC-SHA256-signed) when the job reaches a final state; "
            "refused unless the server has IMAGEBATCH_WEBHOOK_SECRET set"
        ),
    )

    @classmethod
    def from_record(cls, record: object) -> "JobOptions":
        """The options of a stored job (any object with one attribute per option), as submitted.

        They were validated at submission: nothing runs again (no DNS lookup of the callback
        host, no MAX_TOP_K lowered since), so reading a job back never fails or blocks.
        """
        return cls.model_construct(**{name: getattr(record, name) for name in cls.model_fields})

    def resolve_decode(self, default: str) -> str:
        """The decode mode the job runs with: the option; exact for an fp32 job that says nothing
        (fp32 promises torchvision's numbers); otherwise `default` (IMAGEBATCH_DECODE_MODE)."""
        if self.decode:
            return self.decode
        return "exact" if self.precision == "fp32" else default

    @field_validator("callback_url")
    @classmethod
    def _safe_callback(cls, value: str | None) -> str | None:
        # Imported on use: core.webhooks reaches into db, which this bottom-layer module must not load.
        from imagebatch.core.webhooks import UnsafeUrl, check_callback_url

        if not value:
            return None
        if not settings.WEBHOOK_SECRET:
            # A signature made with an empty key is one anyone can forge.
            raise ValueError(
                "IMAGEBATCH_WEBHOOK_SECRET is not set on the server, so the webhook could not be signed; "
                "ask the operator to set it, or submit without callback_url"
            )
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
        if value == "int8" and not settings.INT8_ENABLED:
            raise ValueError(
                "int8 is turned off on this server (IMAGEBATCH_INT8_ENABLED=false): submit fp32, bf16 or auto"
            )
        return value

    @field_validator("decode", mode="before")
    @classmethod
    def _known_decode(cls, value: object) -> object:
        if value is None or value == "":
            return None  # not said: resolve_decode decides
        if value not in DECODE_MODES:
            raise ValueError(f"must be one of {', '.join(DECODE_MODES)} (got {value!r})")
        return value
