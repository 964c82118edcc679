"""Built artefacts (model exports, Grad-CAM maps): their kinds, formats, cache keys, storage keys and media types."""

from dataclasses import dataclass

EXPORT = "export"
GRADCAM = "gradcam"
EXPORT_FORMATS = ("onnx", "torchscript")
GRADCAM_FORMATS = ("heatmap", "overlay")

PENDING = "pending"
READY = "ready"
FAILED = "failed"

# How long the API answers 202 before it sends a pending artefact's task again (its message may be lost).
RESEND_AFTER_SECONDS = 120
# How long a failed build is answered with its reason before a request builds it again.
RETRY_FAILED_AFTER_SECONDS = 120
RETRY_AFTER_SECONDS = 2  # the Retry-After of a 202: builds take seconds (ResNet-18 ONNX ~5 s on 2 cores)

_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "heatmap": ".png", "overlay": ".png"}
MEDIA_TYPES = {
    "onnx": "application/octet-stream",
    "torchscript": "application/octet-stream",
    "heatmap": "image/png",
    "overlay": "image/png",
}


@dataclass(frozen=True)
class ExportRequest:
    """An export of one model version: cached per tenant, model and weights. A built-in model's weights are
    the deployment's, shared by every tenant (tenant ""); the worker records their hash when it builds."""

    tenant: str
    model: str  # "resnet18" or "name:version"
    base_model: str
    weights_sha256: str | None  # a custom model's, known at request time
    format: str

    @property
    def cache_key(self) -> str:
        return f"{EXPORT}/{self.format}/{self.tenant}/{self.model}/{self.weights_sha256 or 'builtin'}"


@dataclass(frozen=True)
class GradcamRequest:
    """A Grad-CAM map of one image of a job, for one class, in one format."""

    job_id: str
    image_index: int
    class_index: int
    format: str

    @property
    def cache_key(self) -> str:
        return f"{GRADCAM}/{self.job_id}/{self.image_index}/{self.class_index}/{self.format}"


def file_name(model: str, fmt: str) -> str:
    """The download name of an export ("digits-2.onnx" for digits:2)."""
    return model.replace(":", "-") + _SUFFIXES[fmt]


def storage_key(
    kind: str, artefact_id: int, *, job_id: str | None, model: str, fmt: str, weights_key: str | None = None
) -> str:
    """Where the file lives: beside what it is made from, so deleting that deletes it too. A job's Grad-CAM
    maps under the job's prefix; a custom model's exports beside its weights (`weights_key`)."""
    if kind == GRADCAM:
        return f"{job_id}/gradcam/{artefact_id}{_SUFFIXES[fmt]}"
    folder = f"{weights_key.rsplit('/', 1)[0]}/exports" if weights_key else "artefacts"
    return f"{folder}/{artefact_id}/{file_name(model, fmt)}"
