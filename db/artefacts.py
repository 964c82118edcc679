"""Read-side queries of artefacts: one by id for the worker that builds it, with what building it needs."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from imagebatch.core.catalog import ModelRef, parse_model_ref
from imagebatch.db.models import Artefact, Image, RegisteredModel
from imagebatch.db.registry import find_model


@dataclass(frozen=True)
class BuildOrder:
    """An artefact as its worker sees it: what to build, from which weights and (Grad-CAM) which image."""

    id: int
    kind: str
    format: str
    state: str
    model: str
    base_model: str
    # A custom model's registry entry (name, version, weights key, weights SHA-256); None for a built-in.
    custom: tuple[str, int, str, str] | None
    custom_missing: bool  # a custom model whose version was deleted since the request
    job_id: str | None
    image_index: int | None
    class_index: int | None
    image_location: str | None


def _custom_entry(session: Session, ref: ModelRef, tenant: str | None) -> RegisteredModel | None:
    return None if ref.version is None else find_model(session, tenant or None, ref)


def build_order(session: Session, artefact_id: int) -> BuildOrder | None:
    """The artefact with its custom model's registry entry and its image's location; None if it is gone."""
    row = session.get(Artefact, artefact_id)
    if row is None:
        return None
    ref = parse_model_ref(row.model)  # a custom model's artefact names its version: name:version
    custom = _custom_entry(session, ref, row.tenant)
    location = None
    if row.job_id is not None:
        location = session.scalar(
            select(Image.location).where(Image.job_id == row.job_id, Image.idx == row.image_index)
        )
    return BuildOrder(
        id=row.id,
        kind=row.kind,
        format=row.format,
        state=row.state,
        model=row.model,
        base_model=row.base_model,
        custom=None if custom is None else (custom.name, custom.version, custom.weights_key, custom.weights_sha256),
        custom_missing=ref.version is not None and custom is None,
        job_id=row.job_id,
        image_index=row.image_index,
        class_index=row.class_index,
        image_location=location,
    )
