"""Rich tables of custom models: epoch metrics, model lists, per-class scores, a confusion matrix."""

from typing import Any

from rich.table import Column, Table


def epoch_table(job: dict[str, Any]) -> Table:
    """One row per finished epoch of a training job's document; the best epoch marked."""
    title = f"{job.get('name', '')} {job.get('state', '')} {job.get('progress', 0) * 100:.0f}%".strip()
    table = Table("epoch", "train loss", "train acc", "val loss", "val acc", "seconds", "", title=title or None)
    best = (job.get("best") or {}).get("epoch")
    for stats in job.get("epochs") or []:
        table.add_row(
            str(stats["epoch"]),
            f"{stats['train_loss']:.4f}",
            f"{stats['train_accuracy']:.3f}",
            f"{stats['val_loss']:.4f}",
            f"{stats['val_accuracy']:.3f}",
            f"{stats['seconds']:.1f}",
            "best" if stats["epoch"] == best else "",
        )
    return table


def _score(metrics: dict | None, key: str) -> str:
    value = (metrics or {}).get(key)
    return f"{value:.4f}" if isinstance(value, float) else "-"


def model_table(items: list[dict[str, Any]]) -> Table:
    table = Table(Column("model", no_wrap=True), "base", "mode", "classes", "val acc", "macro F1", "created")
    for item in items:
        ref = item["ref"] + (" (latest)" if not item["builtin"] and item["latest"] else "")
        table.add_row(
            ref,
            item["base_model"],
            item.get("mode") or "built-in",
            str(item["num_classes"]),
            _score(item.get("metrics"), "val_accuracy"),
            _score(item.get("metrics"), "macro_f1"),
            str(item.get("created_at") or ""),
        )
    return table


def per_class_table(metrics: dict[str, Any]) -> Table:
    table = Table("class", "precision", "recall", "F1", "support", title="per class")
    for row in metrics.get("per_class") or []:
        table.add_row(
            row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"])
        )
    macro = metrics.get("macro_avg") or {}
    if macro:
        table.add_row("macro avg", f"{macro['precision']:.3f}", f"{macro['recall']:.3f}", f"{macro['f1']:.3f}", "")
    return table


def confusion_table(matrix: dict[str, Any]) -> Table:
    """True class by row, predicted class by column; the diagonal in bold."""
    classes = matrix["classes"]
    table = Table("true \\ predicted", *(Column(name, justify="right") for name in classes), title="confusion matrix")
    for i, (name, row) in enumerate(zip(classes, matrix["rows"], strict=True)):
        table.add_row(name, *(f"[bold]{n}[/bold]" if i == j else str(n) for j, n in enumerate(row)))
    return table
