"""Evaluation as pure functions of (true index, ranking) pairs: top-k, per-class scores, confusion (no torch)."""

from collections.abc import Sequence

import numpy as np


def _rows(rankings: Sequence[Sequence[int]]) -> list[list[int]]:
    rows = [list(r) for r in rankings]
    if any(not r for r in rows):
        raise ValueError("every prediction needs a ranking with at least one class")
    return rows


def top_k_accuracy(true: Sequence[int], rankings: Sequence[Sequence[int]], k: int) -> float:
    """Share of samples whose true class is among the first k of their ranking (best first)."""
    rows = _rows(rankings)
    if len(rows) != len(true):
        raise ValueError(f"{len(true)} true labels but {len(rows)} rankings")
    if not rows:
        return 0.0
    return sum(t in r[:k] for t, r in zip(true, rows, strict=True)) / len(rows)


def confusion_matrix(true: Sequence[int], predicted: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts with the true class by row and the predicted class by column."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class, from a confusion matrix."""
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    fp, fn = predicted - tp, support - tp
    return {
        "precision": _safe_divide(tp, predicted.astype(np.float64)),
        "recall": _safe_divide(tp, support.astype(np.float64)),
        "f1": _safe_divide(2 * tp, (2 * tp + fp + fn).astype(np.float64)),
        "support": support,
    }


def evaluate(true: Sequence[int], rankings: Sequence[Sequence[int]], classes: Sequence[str]) -> dict:
    """The evaluation record: top-1/top-5 accuracy, per-class and macro scores, the confusion matrix."""
    rows = _rows(rankings)
    matrix = confusion_matrix(true, [r[0] for r in rows], len(classes))
    scores = per_class_scores(matrix)
    per_class = [
        {
            "class": name,
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(classes)
    ]
    return {
        "count": len(rows),
        "top1_accuracy": top_k_accuracy(true, rows, 1),
        "top5_accuracy": top_k_accuracy(true, rows, 5),
        "per_class": per_class,
        "macro_avg": {key: float(scores[key].mean()) for key in ("precision", "recall", "f1")},
        "confusion_matrix": {"classes": list(classes), "rows": matrix.tolist()},
    }
