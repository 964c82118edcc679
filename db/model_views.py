"""Models as clients see them: built-in and custom, one summary per version, a detail with curves and scores."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from imagebatch.core.catalog import MODELS, builtin_classes
from imagebatch.db.evaluations import evaluation_metrics
from imagebatch.db.models import RegisteredModel, as_utc
from imagebatch.db.registry import latest_evaluation
from imagebatch.db.training_views import Epoch


class ModelSummary(BaseModel):
    """One item of GET /v1/models: a built-in model, or one version of a custom model."""

    name: str
    version: int | None = Field(description="null for a built-in model")
    ref: str = Field(description="what `model=` takes to pin exactly this: resnet18, or name:version")
    builtin: bool
    latest: bool = Field(description="the version `model=<name>` resolves to")
    base_model: str
    mode: str | None = Field(description="transfer, finetune or scratch; null for a built-in model")
    classes: list[str] | None = Field(description="class names in index order; null for a built-in model")
    num_classes: int
    embedding_dim: int
    metrics: dict[str, Any] | None = Field(description="the best epoch's validation scores")
    weights: str | None = Field(description="torchvision weights of a built-in model")
    weights_sha256: str | None = Field(description="of a custom model's weights file (built-in: in each job's record)")
    created_at: datetime | None
    training_job_id: str | None


class ModelEvaluation(BaseModel):
    id: str
    created_at: datetime | None
    metrics: dict[str, Any] | None


class ModelDetail(ModelSummary):
    """GET /v1/models/{name}[:version]: the summary, the training curves and scores, and every version."""

    history: list[Epoch] = Field(description="per-epoch loss and accuracy of the run that made it")
    evaluation: dict[str, Any] | None = Field(
        description="the best epoch on the validation split: top-1/5, per-class scores, confusion matrix"
    )
    dataset: dict[str, Any] | None = Field(description="the data step's report of the run")
    training: dict[str, Any] | None = Field(description="hyper-parameters, split, dataset SHA-256, precision, versions")
    latest_evaluation: ModelEvaluation | None = Field(description="the newest completed POST /v1/evaluations")
    versions: list[ModelSummary] = Field(description="every live version of the name, newest first")


class ModelPage(BaseModel):
    items: list[ModelSummary]


def builtin_summary(name: str) -> ModelSummary:
    spec = MODELS[name]
    return ModelSummary(
        name=name,
        version=None,
        ref=name,
        builtin=True,
        latest=True,
        base_model=name,
        mode=None,
        classes=None,
        num_classes=spec.num_classes,
        embedding_dim=spec.embedding_dim,
        metrics=None,
        weights=spec.weights_name,
        weights_sha256=None,
        created_at=None,
        training_job_id=None,
    )


def model_scores(meta: dict) -> dict[str, Any]:
    """The registry's `metrics` of a saved model's metadata (what lists and the submit form show)."""
    evaluation = meta.get("evaluation") or {}
    return {
        "best_epoch": meta.get("best_epoch"),
        "val_accuracy": (meta.get("best") or {}).get("val_accuracy"),
        "top1_accuracy": evaluation.get("top1_accuracy"),
        "top5_accuracy": evaluation.get("top5_accuracy"),
        "macro_f1": (evaluation.get("macro_avg") or {}).get("f1"),
        "val_count": evaluation.get("count"),
    }


def custom_summary(model: RegisteredModel, latest: bool) -> ModelSummary:
    return ModelSummary(
        name=model.name,
        version=model.version,
        ref=f"{model.name}:{model.version}",
        builtin=False,
        latest=latest,
        base_model=model.base_model,
        mode=model.mode,
        classes=model.classes,
        num_classes=len(model.classes),
        embedding_dim=MODELS[model.base_model].embedding_dim,
        metrics=model.metrics,
        weights=None,
        weights_sha256=model.weights_sha256,
        created_at=as_utc(model.created_at),
        training_job_id=model.training_job_id,
    )


def builtin_detail(name: str) -> ModelDetail:
    summary = builtin_summary(name).model_dump()
    summary["classes"] = list(builtin_classes(name))
    return ModelDetail(
        **summary, history=[], evaluation=None, dataset=None, training=None, latest_evaluation=None, versions=[]
    )


def _training_record(meta: dict) -> dict[str, Any]:
    keys = ("hyperparameters", "seed", "split", "preprocessing", "precision", "device", "versions", "base_weights")
    record = {key: meta.get(key) for key in keys}
    record["dataset_sha256"] = (meta.get("dataset") or {}).get("sha256")
    record["resumed_after_epochs"] = meta.get("resumed_after_epochs")
    return record


def custom_detail(
    session: Session, tenant: str | None, model: RegisteredModel, versions: list[RegisteredModel]
) -> ModelDetail:
    """The version in full; `versions` are the name's live versions, newest first."""
    meta = model.meta or {}
    evaluated = latest_evaluation(session, tenant, model.name, model.version)
    latest = (
        ModelEvaluation(
            id=evaluated.id, created_at=as_utc(evaluated.created_at), metrics=evaluation_metrics(session, evaluated)
        )
        if evaluated is not None
        else None
    )
    return ModelDetail(
        **custom_summary(model, latest=model.version == versions[0].version).model_dump(),
        history=meta.get("history") or [],
        evaluation=meta.get("evaluation"),
        dataset=(meta.get("dataset") or {}).get("report"),
        training=_training_record(meta),
        latest_evaluation=latest,
        versions=[custom_summary(v, latest=i == 0) for i, v in enumerate(versions)],
    )
