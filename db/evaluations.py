"""An evaluation is a job whose images carry their true label: its metrics, from the stored predictions."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from imagebatch.core import metrics
from imagebatch.core.catalog import builtin_classes
from imagebatch.db.models import Image, ImageStatus, Job
from imagebatch.db.views import JobView, job_views


class ConfusionMatrix(BaseModel):
    classes: list[str]
    rows: list[list[int]] = Field(description="rows[i][j]: images of true class i predicted as class j")


class ClassScores(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class")
    precision: float
    recall: float
    f1: float
    support: int


class EvaluationMetrics(BaseModel):
    count: int = Field(description="images evaluated (processed successfully)")
    top1_accuracy: float
    top5_accuracy: float
    per_class: list[ClassScores]
    macro_avg: dict[str, float]
    confusion_matrix: ConfusionMatrix


class EvaluationView(JobView):
    """GET /v1/evaluations/{id}: the job, and its metrics over the images processed so far."""

    metrics: EvaluationMetrics | None = Field(description="null until an image is processed")


def _classes(job: Job, true: list[str], top1: list[str]) -> list[str]:
    """A custom model's classes, in index order; for a built-in model, the ImageNet classes that occur
    as a true or a top-1 label, in index order (a 1,000 x 1,000 matrix would be almost all zeros)."""
    recorded = (job.reproducibility or {}).get("classes")
    if job.custom_model and recorded:
        return list(recorded)
    seen = set(true) | set(top1)
    return [name for name in dict.fromkeys(builtin_classes(job.model)) if name in seen]


def evaluation_metrics(session: Session, job: Job) -> dict[str, Any] | None:
    """Top-1/top-5 accuracy, per-class scores and the confusion matrix of the job's processed images.

    Computed from what the results routes serve (true label, top-k labels), with core.metrics, the
    functions the trainer scores its validation split with; failed images are not counted.
    """
    rows = session.execute(
        select(Image.true_label, Image.topk)
        .where(Image.job_id == job.id, Image.status == ImageStatus.OK.value, Image.true_label.is_not(None))
        .order_by(Image.idx)
    ).all()
    if not rows:
        return None
    true = [label for label, _ in rows]
    rankings = [[entry["label"] for entry in topk or []] for _, topk in rows]
    classes = _classes(job, true, [r[0] for r in rankings if r])
    index = {name: i for i, name in enumerate(classes)}
    ranked = [[index.get(label, -1) for label in ranking] or [-1] for ranking in rankings]
    return metrics.evaluate([index[label] for label in true], ranked, classes)


def evaluation_view(session: Session, job: Job) -> EvaluationView:
    view = job_views(session, [job])[0]
    scores = evaluation_metrics(session, job)
    metrics = EvaluationMetrics.model_validate(scores) if scores is not None else None
    return EvaluationView(**view.model_dump(by_alias=True), metrics=metrics)
