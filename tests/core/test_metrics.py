"""Evaluation metrics against scikit-learn's on random data, including classes never predicted or never seen."""

import numpy as np
import pytest
from sklearn import metrics as skm

from imagebatch.core.metrics import confusion_matrix, evaluate, top_k_accuracy


def _random_case(seed: int, num_classes: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, num_classes, count)
    # Scores that favour the true class a little, so accuracies land mid-range rather than at chance.
    scores = rng.normal(size=(count, num_classes))
    scores[np.arange(count), true] += rng.uniform(0, 2, count)
    return true, scores


def _rankings(scores: np.ndarray) -> list[list[int]]:
    return np.argsort(-scores, axis=1).tolist()


@pytest.mark.parametrize("seed,num_classes,count", [(0, 10, 300), (1, 3, 50), (2, 7, 23), (3, 12, 500)])
def test_metrics_match_scikit_learn(seed: int, num_classes: int, count: int) -> None:
    true, scores = _random_case(seed, num_classes, count)
    classes = [f"c{i}" for i in range(num_classes)]
    report = evaluate(true.tolist(), _rankings(scores), classes)
    labels = list(range(num_classes))
    predicted = scores.argmax(1)

    assert report["count"] == count
    assert report["top1_accuracy"] == pytest.approx(skm.accuracy_score(true, predicted))
    assert report["top1_accuracy"] == pytest.approx(skm.top_k_accuracy_score(true, scores, k=1, labels=labels))
    top5 = skm.top_k_accuracy_score(true, scores, k=5, labels=labels) if num_classes > 5 else 1.0
    assert report["top5_accuracy"] == pytest.approx(top5)
    assert report["confusion_matrix"]["classes"] == classes
    assert report["confusion_matrix"]["rows"] == skm.confusion_matrix(true, predicted, labels=labels).tolist()
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        true, predicted, labels=labels, zero_division=0
    )
    got = report["per_class"]
    assert [row["class"] for row in got] == classes
    assert [row["precision"] for row in got] == pytest.approx(precision.tolist())
    assert [row["recall"] for row in got] == pytest.approx(recall.tolist())
    assert [row["f1"] for row in got] == pytest.approx(f1.tolist())
    assert [row["support"] for row in got] == support.tolist()
    assert report["macro_avg"]["f1"] == pytest.approx(skm.f1_score(true, predicted, average="macro", zero_division=0))


def test_classes_never_predicted_or_absent_score_zero_like_scikit_learn() -> None:
    # Class 2 never occurs and is never predicted; class 3 occurs but is never predicted.
    true = [0, 0, 1, 1, 3, 3]
    predicted = [0, 1, 1, 1, 0, 1]
    report = evaluate(true, [[p] for p in predicted], ["a", "b", "c", "d"])
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        true, predicted, labels=[0, 1, 2, 3], zero_division=0
    )
    assert [r["precision"] for r in report["per_class"]] == pytest.approx(precision.tolist())
    assert [r["recall"] for r in report["per_class"]] == pytest.approx(recall.tolist())
    assert [r["f1"] for r in report["per_class"]] == pytest.approx(f1.tolist())
    assert report["per_class"][2] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["confusion_matrix"]["rows"][3] == [1, 1, 0, 0]


def test_top_k_uses_only_the_first_k_of_each_ranking() -> None:
    true = [2, 2, 2, 0]
    rankings = [[2, 0, 1], [0, 2, 1], [0, 1, 2], [1, 2, 0]]
    assert top_k_accuracy(true, rankings, 1) == 0.25
    assert top_k_accuracy(true, rankings, 2) == 0.5
    assert top_k_accuracy(true, rankings, 3) == 1.0


def test_mismatched_or_empty_rankings_are_errors() -> None:
    with pytest.raises(ValueError, match="2 true labels but 1 rankings"):
        top_k_accuracy([0, 1], [[0]], 1)
    with pytest.raises(ValueError, match="at least one class"):
        evaluate([0], [[]], ["a", "b"])


def test_confusion_matrix_counts_repeated_pairs() -> None:
    assert confusion_matrix([1, 1, 1, 0], [0, 0, 1, 0], 2).tolist() == [[1, 0], [2, 1]]
