"""`model=` on a submission: a built-in model, or a tenant's custom model resolved to one version now."""

from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy.orm import Session

from imagebatch.core.catalog import MODEL_NAMES, builtin_classes, parse_model_ref
from imagebatch.db.registry import find_model


@dataclass(frozen=True)
class ResolvedModel:
    """What a job records: the architecture (its queue), and a custom model's name and version."""

    base_model: str
    custom_model: str | None
    version: int | None
    classes: tuple[str, ...]

    @property
    def ref(self) -> str:
        return self.base_model if self.custom_model is None else f"{self.custom_model}:{self.version}"


def resolve_model(session: Session, tenant: str | None, value: str, field: str = "model") -> ResolvedModel:
    """The model `value` names for this tenant; 422 naming it when there is no such model or version."""
    try:
        ref = parse_model_ref(value)
    except ValueError as exc:
        raise HTTPException(422, f"{field}: {exc}") from exc
    if ref.builtin:
        return ResolvedModel(ref.name, None, None, builtin_classes(ref.name))
    found = find_model(session, tenant, ref)
    if found is None:
        what = f"version {ref.version} of custom model {ref.name!r}" if ref.version else f"custom model {ref.name!r}"
        raise HTTPException(
            422,
            f"{field}: must be one of {', '.join(MODEL_NAMES)} or a custom model's name; "
            f"there is no {what} (GET /v1/models lists them)",
        )
    return ResolvedModel(found.base_model, found.name, found.version, tuple(found.classes))
