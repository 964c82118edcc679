"""Model routes: the built-in and custom models a tenant can classify with; one model's detail; delete."""

import logging

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy.orm import Session

from imagebatch.api.auth import TenantDep
from imagebatch.api.deps import SessionDep
from imagebatch.api.schemas import error_responses
from imagebatch.core.catalog import MODEL_NAMES, ModelRef, parse_model_ref
from imagebatch.core.storage import get_store
from imagebatch.db import lifecycle
from imagebatch.db.model_views import (
    ModelDetail,
    ModelPage,
    builtin_detail,
    builtin_summary,
    custom_detail,
    custom_summary,
)
from imagebatch.db.registry import find_model, list_models, model_versions, versions_in_use

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/models", tags=["models"])


def _ref_or_404(value: str) -> ModelRef:
    try:
        return parse_model_ref(value)
    except ValueError as exc:
        raise HTTPException(404, f"Model not found: {exc}") from exc


def _not_found(ref: ModelRef) -> HTTPException:
    return HTTPException(404, f"Model not found: no custom model {str(ref)!r} (GET /v1/models lists them)")


@router.get("", name="list_models", response_model=ModelPage, responses=error_responses(503))
def list_all_models(session: SessionDep, tenant: TenantDep) -> ModelPage:
    """Built-in models, then every version of the tenant's custom models (by name, newest version first)."""
    custom = list_models(session, tenant)
    latest: dict[str, int] = {}
    for model in custom:
        latest.setdefault(model.name, model.version)
    items = [builtin_summary(name) for name in MODEL_NAMES]
    items += [custom_summary(model, latest=latest[model.name] == model.version) for model in custom]
    return ModelPage(items=items)


def _detail(session: Session, tenant: str | None, ref: ModelRef) -> ModelDetail:
    if ref.builtin:
        return builtin_detail(ref.name)
    model = find_model(session, tenant, ref)
    if model is None:
        raise _not_found(ref)
    return custom_detail(session, tenant, model, model_versions(session, tenant, ref.name))


@router.get("/{model}", response_model=ModelDetail, responses=error_responses(404, 503))
def get_model(model: str, session: SessionDep, tenant: TenantDep) -> ModelDetail:
    """A model in full: `name` is its latest version, `name:version` that one; with its training
    curves, validation scores (per class, confusion matrix), latest evaluation and every version."""
    return _detail(session, tenant, _ref_or_404(model))


@router.delete("/{model}", status_code=204, responses=error_responses(404, 409, 503))
def delete_model(model: str, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete every version of a custom model (`name`) or one (`name:version`), with their weights;
    409 while a queued or running job uses it. Version numbers are never handed out again."""
    ref = _ref_or_404(model)
    if ref.builtin:
        raise HTTPException(409, f"{ref.name} is a built-in model and cannot be deleted")
    if find_model(session, tenant, ref) is None:
        raise _not_found(ref)
    busy = versions_in_use(session, tenant, ref.name, ref.version)
    if busy:
        versions = ", ".join(f"{ref.name}:{v}" for v in busy)
        raise HTTPException(409, f"{versions} is used by a queued or running job; cancel it or wait for it to end")
    deleted = lifecycle.delete_model(session=session, tenant=tenant, name=ref.name, version=ref.version)
    if not deleted:  # a job took it between the check and the delete
        raise HTTPException(409, f"{ref} is used by a queued or running job; cancel it or wait for it to end")
    session.commit()
    store = get_store()
    for version, weights_key in deleted:
        store.delete_prefix(weights_key.rsplit("/", 1)[0])
        logger.info("deleted model %s:%d", ref.name, version)
    return Response(status_code=204)
