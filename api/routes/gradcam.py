"""Grad-CAM of one image of a job: what the model looks at for a class, as a PNG a worker computes once."""

from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy.orm import Session

from imagebatch.api.artefacts import PENDING_RESPONSE, serve_artefact
from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep, get_job_or_404
from imagebatch.api.routes.images import get_image_or_404
from imagebatch.api.schemas import BINARY, content_response, error_responses
from imagebatch.core import artefacts
from imagebatch.core.catalog import ModelRef, builtin_classes
from imagebatch.db.models import Image, ImageStatus, Job, registry_tenant
from imagebatch.db.registry import model_of_job

router = APIRouter(prefix="/v1/jobs", tags=["images"])


def _classes(session: Session, job: Job) -> tuple[tuple[str, ...], str | None]:
    """The job's model's class names and, for a custom model, its weights' SHA-256."""
    if job.custom_model is None:
        return builtin_classes(job.model), None
    entry = model_of_job(session, job)
    if entry is None:
        raise HTTPException(409, f"custom model {job.custom_model}:{job.model_version} was deleted: no Grad-CAM")
    return tuple(entry.classes), entry.weights_sha256


def resolve_class(value: str | None, classes: tuple[str, ...], top1: int | None) -> int:
    """`class=` as an index or a label (default: the image's top-1 class); 422 saying what would do."""
    if value is None or value == "":
        if top1 is None:
            raise HTTPException(409, "the image has no top-1 class to explain; name one with class=")
        return top1
    if value.strip().lstrip("-").isdigit():
        index = int(value)
        if not 0 <= index < len(classes):
            raise HTTPException(
                422, f"class: {index} is out of range: the model has {len(classes)} classes (0 to {len(classes) - 1})"
            )
        return index
    if value in classes:
        return classes.index(value)
    raise HTTPException(
        422,
        f"class: {value!r} is neither a class index (0 to {len(classes) - 1}) nor one of "
        "the model's labels (GET /v1/models/{model} lists them)",
    )


def _check_classified(image: Image) -> None:
    if image.status == ImageStatus.ERROR.value:
        raise HTTPException(
            409,
            f"image {image.idx} failed ({image.error_category}: {image.error_message}): "
            "there is no prediction to explain",
        )
    if image.status != ImageStatus.OK.value:
        raise HTTPException(409, f"image {image.idx} is {image.status}: Grad-CAM needs a classified image")


@router.get(
    "/{job_id}/images/{index}/gradcam",
    name="get_gradcam",
    response_class=Response,
    responses={
        200: content_response("The Grad-CAM PNG at the model's input crop", BINARY, "image/png"),
        **PENDING_RESPONSE,
        **error_responses(404, 409, 422, 503),
    },
)
def get_gradcam(
    job_id: str,
    index: int,
    request: Request,
    session: SessionDep,
    tenant: TenantDep,
    class_: str | None = Query(None, alias="class", description="a class index or label (default: top-1)"),
    map_format: Literal["heatmap", "overlay"] = Query("heatmap", alias="format", description="heatmap or overlay"),
) -> Response:
    """Grad-CAM of the last convolutional block for a class over the model's input crop: `heatmap` is the map
    min-max scaled to 8-bit grey, `overlay` the crop with the map blended in; 202 while a worker computes it."""
    job = get_job_or_404(session, job_id, tenant)
    image = get_image_or_404(session, job_id, index)
    _check_classified(image)
    classes, weights_sha256 = _classes(session, job)
    class_index = resolve_class(class_, classes, image.top1_index)
    key = artefacts.GradcamRequest(job_id, index, class_index, map_format).cache_key
    model = job.model if job.custom_model is None else str(ModelRef(job.custom_model, job.model_version))
    values = {
        "kind": artefacts.GRADCAM,
        "format": map_format,
        "tenant": registry_tenant(job.tenant),
        "model": model,
        "base_model": job.model,
        "weights_sha256": weights_sha256,
        "job_id": job_id,
        "image_index": index,
        "class_index": class_index,
    }
    headers = {
        "Cache-Control": "private, max-age=86400",
        "X-Class-Index": str(class_index),
        "X-Class-Label": classes[class_index].encode("ascii", "replace").decode(),
    }
    return serve_artefact(session, request, cache_key=key, values=values, headers=headers)
