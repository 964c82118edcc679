"""An evaluation's metrics come from its stored predictions; the `correct` filter picks the (mis)classified."""

import numpy as np
from sklearn import metrics as skm
from sqlalchemy import update

from imagebatch.db import lifecycle
from imagebatch.db.evaluations import evaluation_metrics
from imagebatch.db.models import Image, Job
from imagebatch.db.results import ResultFilters, result_page
from tests.db.helpers import Sessions

CLASSES = ["blue", "green", "red"]


def _evaluation(db: Sessions, true: list[str], ranked: list[list[str]], custom: bool = True) -> None:
    images = [lifecycle.ImageSource(f"{t}/{i}.png", f"blob:e/{i}.png", label=t) for i, t in enumerate(true)]
    with db.begin() as session:
        lifecycle.create_job(
            session=session,
            job_id="e1",
            model="resnet18",
            top_k=5,
            store_probabilities=False,
            precision="fp32",
            chunk_size=4,
            images=images,
            kind="evaluate",
            custom_model="colours" if custom else None,
            model_version=1 if custom else None,
        )
    with db.begin() as session:
        claimed = lifecycle.claim_chunk(session=session, job_id="e1", start=0, stop=len(true), claimed_by="d")
        rows = [
            {
                "id": image.id,
                "status": "ok" if labels else "error",
                "top1_label": labels[0] if labels else None,
                "topk": [{"index": 0, "label": label, "probability": 0.1} for label in labels] or None,
            }
            for image, labels in zip(claimed, ranked, strict=True)
        ]
        lifecycle.write_chunk_results(session=session, rows=rows)
        record = {"classes": CLASSES} if custom else {}
        session.execute(update(Job).where(Job.id == "e1").values(reproducibility=record))


def test_custom_model_metrics_equal_scikit_learn_on_the_stored_predictions(db):
    rng = np.random.default_rng(4)
    true = [CLASSES[i] for i in rng.integers(0, 3, 40)]
    ranked = [list(rng.permutation(CLASSES)) for _ in true]
    ranked[5] = []  # a failed image is not evaluated
    _evaluation(db, true, ranked)
    with db() as session:
        found = evaluation_metrics(session, session.get(Job, "e1"))
    kept = [(t, r) for t, r in zip(true, ranked, strict=True) if r]
    y_true, y_pred = [t for t, _ in kept], [r[0] for _, r in kept]
    assert found["count"] == 39
    assert found["top1_accuracy"] == skm.accuracy_score(y_true, y_pred)
    assert found["top5_accuracy"] == 1.0  # three classes: the true one is always ranked
    assert found["confusion_matrix"] == {
        "classes": CLASSES,
        "rows": skm.confusion_matrix(y_true, y_pred, labels=CLASSES).tolist(),
    }
    f1 = skm.f1_score(y_true, y_pred, labels=CLASSES, average=None, zero_division=0)
    assert [row["f1"] for row in found["per_class"]] == list(f1)


def test_builtin_model_metrics_cover_only_the_classes_that_occur(db):
    true = ["tabby", "tabby", "goldfish", "goldfish"]
    ranked = [["tabby", "tiger cat"], ["tiger cat", "tabby"], ["goldfish"], ["tench", "goldfish"]]
    _evaluation(db, true, ranked, custom=False)
    with db() as session:
        found = evaluation_metrics(session, session.get(Job, "e1"))
    # ImageNet order: tench 0, goldfish 1, tabby 281, tiger cat 282.
    assert found["confusion_matrix"]["classes"] == ["tench", "goldfish", "tabby", "tiger cat"]
    assert found["confusion_matrix"]["rows"] == [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]
    assert (found["top1_accuracy"], found["top5_accuracy"]) == (0.5, 1.0)


def test_the_correct_filter_returns_misclassified_or_correct_processed_images(db):
    _evaluation(db, ["red", "red", "blue", "green"], [["red"], ["blue"], [], ["green"]])
    with db() as session:
        wrong, _ = result_page(session, job_id="e1", filters=ResultFilters(correct=False), limit=10, cursor=None)
        right, _ = result_page(session, job_id="e1", filters=ResultFilters(correct=True), limit=10, cursor=None)
    assert [image.idx for image in wrong] == [1]
    assert [image.idx for image in right] == [0, 3]
    assert {image.true_label for image in right} == {"red", "green"}
    assert all(isinstance(image, Image) for image in wrong + right)
