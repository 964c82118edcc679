"""Model registry transitions: register the next version of a name, delete versions no active job uses."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from imagebatch.db.models import UNFINISHED_STATES, Job, RegisteredModel, registry_tenant, utcnow

_REGISTER_TRIES = 5


@dataclass(frozen=True)
class NewModel:
    """A trained model's registry entry, before it has a version."""

    name: str
    base_model: str
    mode: str
    classes: list[str]
    metrics: dict
    weights_sha256: str
    weights_key: str
    meta: dict
    training_job_id: str | None = None


def _next_version(tenant: str, name: str) -> ScalarSelect[int]:
    """max(version) + 1 over every version ever registered under the name, deleted ones included."""
    return (
        select(func.coalesce(func.max(RegisteredModel.version), 0) + 1)
        .where(RegisteredModel.tenant == tenant, RegisteredModel.name == name)
        .scalar_subquery()
    )


def register_model(*, session: Session, tenant: str | None, model: NewModel) -> int:
    """Insert `model` as the name's next version in one INSERT ... SELECT; returns the version.

    Two registrations of one name at once compute the same number; the unique constraint lets
    one in and the other tries again (inside a savepoint, so the caller's transaction lives on).
    """
    owner = registry_tenant(tenant)
    values: dict[str, ColumnElement[Any] | ScalarSelect[int]] = {
        "tenant": literal(owner),
        "name": literal(model.name),
        "version": _next_version(owner, model.name),
        "base_model": literal(model.base_model),
        "mode": literal(model.mode),
        "weights_sha256": literal(model.weights_sha256),
        "weights_key": literal(model.weights_key),
        "training_job_id": literal(model.training_job_id, RegisteredModel.training_job_id.type),
        "classes": literal(model.classes, RegisteredModel.classes.type),
        "metrics": literal(model.metrics, RegisteredModel.metrics.type),
        "meta": literal(model.meta, RegisteredModel.meta.type),
        "created_at": literal(utcnow(), RegisteredModel.created_at.type),
    }
    for attempt in range(_REGISTER_TRIES):
        try:
            with session.begin_nested():
                version = session.execute(
                    insert(RegisteredModel)
                    .from_select(list(values), select(*values.values()))
                    .returning(RegisteredModel.version)
                ).scalar_one()
        except IntegrityError:
            if attempt == _REGISTER_TRIES - 1:
                raise
            continue
        return version
    raise AssertionError("unreachable")


def in_use(
    tenant: str | None, name: str, version: ColumnElement[int] | InstrumentedAttribute[int] | int
) -> ColumnElement[bool]:
    """A queued, running or cancelling job (classification or evaluation) of that tenant uses the version."""
    owner = Job.tenant.is_(None) if tenant is None else Job.tenant == tenant
    return exists().where(
        owner, Job.custom_model == name, Job.model_version == version, Job.state.in_(UNFINISHED_STATES)
    )


def delete_model(*, session: Session, tenant: str | None, name: str, version: int | None = None) -> list[tuple]:
    """Mark the name's live versions (or one) deleted, unless a job still uses it; (version, weights key)
    of each deleted. Conditional per version: a version in use is left alone, the others go."""
    where = [
        RegisteredModel.tenant == registry_tenant(tenant),
        RegisteredModel.name == name,
        RegisteredModel.deleted_at.is_(None),
        ~in_use(tenant, name, RegisteredModel.version),
    ]
    if version is not None:
        where.append(RegisteredModel.version == version)
    rows = session.execute(
        update(RegisteredModel)
        .where(*where)
        .values(deleted_at=utcnow())
        .returning(RegisteredModel.version, RegisteredModel.weights_key)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted((row[0], row[1]) for row in rows)
