"""Read-side queries of the model registry: resolve a name to a version, list a tenant's models, find users."""

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from imagebatch.core.catalog import ModelRef
from imagebatch.db.lifecycle.models import in_use
from imagebatch.db.models import Job, JobKind, JobState, RegisteredModel, registry_tenant


def _live(tenant: str | None, name: str) -> tuple[ColumnElement[bool], ...]:
    return (
        RegisteredModel.tenant == registry_tenant(tenant),
        RegisteredModel.name == name,
        RegisteredModel.deleted_at.is_(None),
    )


def find_model(session: Session, tenant: str | None, ref: ModelRef) -> RegisteredModel | None:
    """The version `ref` pins, or the name's latest live version; None when there is none."""
    query = select(RegisteredModel).where(*_live(tenant, ref.name))
    if ref.version is not None:
        query = query.where(RegisteredModel.version == ref.version)
    return session.scalar(query.order_by(RegisteredModel.version.desc()).limit(1))


def model_versions(session: Session, tenant: str | None, name: str) -> list[RegisteredModel]:
    """Every live version of a name, newest first."""
    return list(
        session.scalars(select(RegisteredModel).where(*_live(tenant, name)).order_by(RegisteredModel.version.desc()))
    )


def list_models(session: Session, tenant: str | None) -> list[RegisteredModel]:
    """Every live version of every custom model of the tenant, by name, newest version first."""
    return list(
        session.scalars(
            select(RegisteredModel)
            .where(RegisteredModel.tenant == registry_tenant(tenant), RegisteredModel.deleted_at.is_(None))
            .order_by(RegisteredModel.name, RegisteredModel.version.desc())
        )
    )


def model_of_job(session: Session, job: Job) -> RegisteredModel | None:
    """The registry entry a custom model's job was resolved to (None once that version is deleted)."""
    if job.custom_model is None or job.model_version is None:
        return None
    return find_model(session, job.tenant, ModelRef(job.custom_model, job.model_version))


def versions_in_use(session: Session, tenant: str | None, name: str, version: int | None = None) -> list[int]:
    """Live versions of the name that a queued, running or cancelling job uses (deleting them is refused)."""
    query = select(RegisteredModel.version).where(*_live(tenant, name), in_use(tenant, name, RegisteredModel.version))
    if version is not None:
        query = query.where(RegisteredModel.version == version)
    return sorted(session.scalars(query))


def latest_evaluation(session: Session, tenant: str | None, name: str, version: int) -> Job | None:
    """The newest completed evaluation job of a custom model's version."""
    owner = Job.tenant.is_(None) if tenant is None else Job.tenant == tenant
    return session.scalar(
        select(Job)
        .where(
            owner,
            Job.kind == JobKind.EVALUATE.value,
            Job.custom_model == name,
            Job.model_version == version,
            Job.state == JobState.COMPLETED.value,
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )
