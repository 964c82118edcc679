"""Model exports: a model version as an ONNX or TorchScript file, built once by a worker and cached by weights."""

from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from imagebatch.api.artefacts import PENDING_RESPONSE, serve_artefact
from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep
from imagebatch.api.schemas import BINARY, content_response, error_responses
from imagebatch.core import artefacts
from imagebatch.core.catalog import ModelRef, parse_model_ref
from imagebatch.db.models import registry_tenant
from imagebatch.db.registry import find_model

router = APIRouter(prefix="/v1/models", tags=["models"])

_FILE = (
    "float32 input N×3×H×W normalised as the model's transforms (dynamic batch axis); outputs logits, "
    "then the embedding; the model, classes, transforms and weights SHA-256 in the file's metadata"
)


@router.get(
    "/{model}/export",
    name="export_model",
    response_class=Response,
    responses={
        200: content_response(f"The model file: {_FILE}", BINARY, "application/octet-stream"),
        **PENDING_RESPONSE,
        **error_responses(404, 409, 422, 503),
    },
)
def export_model(
    model: str,
    request: Request,
    session: SessionDep,
    tenant: TenantDep,
    file_format: Literal["onnx", "torchscript"] = Query("onnx", alias="format", description="onnx or torchscript"),
) -> Response:
    """A built-in model or a custom model's version (`name` is its latest, `name:version` that one) as an ONNX
    or TorchScript file: 202 while a worker builds it, then the file, cached per model and weights."""
    try:
        ref = parse_model_ref(model)
    except ValueError as exc:
        raise HTTPException(404, f"Model not found: {exc}") from exc
    owner = registry_tenant(tenant)
    if ref.builtin:
        request_ = artefacts.ExportRequest("", ref.name, ref.name, None, file_format)
    else:
        found = find_model(session, tenant, ref)
        if found is None:
            raise HTTPException(404, f"Model not found: no custom model {str(ref)!r} (GET /v1/models lists them)")
        name = str(ModelRef(found.name, found.version))
        request_ = artefacts.ExportRequest(owner, name, found.base_model, found.weights_sha256, file_format)
    values = {
        "kind": artefacts.EXPORT,
        "format": file_format,
        "tenant": request_.tenant,
        "model": request_.model,
        "base_model": request_.base_model,
        "weights_sha256": request_.weights_sha256,
    }
    disposition = f'attachment; filename="{artefacts.file_name(request_.model, file_format)}"'
    return serve_artefact(
        session, request, cache_key=request_.cache_key, values=values, headers={"Content-Disposition": disposition}
    )
