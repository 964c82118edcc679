"""`imagebatch train`, `imagebatch evaluate` and `imagebatch models list|show|delete`: custom models."""

import enum
import json
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
from rich.table import Column, Table

from imagebatch.cli.common import EXIT_CODES, EXIT_JOB_FAILED
from imagebatch.cli.console import err, out
from imagebatch.cli.jobs import _client, friendly_errors
from imagebatch.cli.render_models import confusion_table, epoch_table, model_table, per_class_table


# Spelled out for typer's choices and for type checking; tests/cli checks them against core.training.
class Mode(enum.StrEnum):
    transfer = "transfer"
    finetune = "finetune"
    scratch = "scratch"


class BaseModel(enum.StrEnum):
    resnet18 = "resnet18"
    resnet50 = "resnet50"


class TrainPrecision(enum.StrEnum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


app = typer.Typer()
models_app = typer.Typer(help="Custom models: list, show, delete.", no_args_is_help=True)


def _watch(job: Any) -> int:
    """A live table of epoch metrics until the job ends; the exit code."""
    with Live(epoch_table(job.data), console=err, refresh_per_second=2, transient=False) as live:
        job.wait(poll=1.0, on_epoch=lambda _stats: live.update(epoch_table(job.data)))
        live.update(epoch_table(job.data))
    err.print()
    if job.state != "completed":
        err.print(f"training job {job.id} {job.state}: {job.data.get('error') or ''}", highlight=False)
        return EXIT_JOB_FAILED
    err.print(f"registered model [bold]{job.model}[/bold] (classify with --model {job.data['name']})")
    return 0


@app.command(epilog=EXIT_CODES)
@friendly_errors
def train(
    ctx: typer.Context,
    data: Path = typer.Argument(
        ...,
        help="A folder with one subfolder per class (or train/ and val/ of them), or a .zip/.tar/.tar.gz of one.",
    ),
    name: str = typer.Option(..., "--name", help="The model's name (training it again makes a new version)."),
    base_model: BaseModel = typer.Option(BaseModel.resnet18, "--base-model"),
    mode: Mode = typer.Option(Mode.transfer, help="transfer: frozen backbone; finetune: all layers; scratch."),
    epochs: int | None = typer.Option(None, min=1, help="Default: 10."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    learning_rate: float | None = typer.Option(None, "--learning-rate"),
    weight_decay: float | None = typer.Option(None, "--weight-decay"),
    image_size: int | None = typer.Option(None, "--image-size", help="Crop side in pixels. Default: 224."),
    val_fraction: float | None = typer.Option(None, "--val-fraction"),
    seed: int | None = typer.Option(None),
    early_stopping_patience: int | None = typer.Option(None, "--early-stopping-patience"),
    augment: bool | None = typer.Option(None, "--augment/--no-augment", help="Random crops and flips."),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Horizontal flips (off for digits, text)."),
    precision: TrainPrecision | None = typer.Option(None),
    wait: bool = typer.Option(False, "--wait", help="Show a live table of epoch metrics until it ends."),
    as_json: bool = typer.Option(False, "--json", help="Print the training job document instead of its id."),
) -> None:
    """Train a model on a labelled folder or archive; prints the training job's id."""
    with _client(ctx) as client:
        job = client.train(
            data,
            name=name,
            base_model=base_model.value,
            mode=mode.value,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            image_size=image_size,
            val_fraction=val_fraction,
            seed=seed,
            early_stopping_patience=early_stopping_patience,
            augment=augment,
            horizontal_flip=flip,
            precision=precision.value if precision else None,
        )
        typer.echo(json.dumps(job.data, indent=2) if as_json else job.id)
        if wait:
            raise typer.Exit(_watch(job))


@app.command(epilog=EXIT_CODES)
@friendly_errors
def evaluate(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="A folder with one subfolder per class, or an archive of one."),
    model: str = typer.Option(..., "--model", help="A custom model's name[:version], or resnet18/resnet50."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and print the scores (default)."),
    as_json: bool = typer.Option(False, "--json", help="Print the evaluation document."),
) -> None:
    """Evaluate a model on a labelled set: accuracy, per-class scores, confusion matrix."""
    with _client(ctx) as client:
        evaluation = client.evaluate(data, model=model)
        if not wait:
            typer.echo(json.dumps(evaluation.data, indent=2) if as_json else evaluation.id)
            return
        err.print(f"evaluation {evaluation.id} of {model}", highlight=False)
        evaluation.wait(progress=err.is_terminal)
    if as_json:
        typer.echo(json.dumps(evaluation.data, indent=2))
    metrics = evaluation.metrics
    if metrics and not as_json:
        out.print(
            f"top-1 accuracy {metrics['top1_accuracy']:.4f}   top-5 accuracy {metrics['top5_accuracy']:.4f}   "
            f"({metrics['count']} images, {evaluation.counts.get('failed', 0)} failed)",
            highlight=False,
        )
        out.print(per_class_table(metrics))
        out.print(confusion_table(metrics["confusion_matrix"]))
    if evaluation.state != "completed":
        raise typer.Exit(EXIT_JOB_FAILED)


@models_app.command("list", epilog=EXIT_CODES)
@friendly_errors
def list_models(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Built-in models and every version of your custom models."""
    with _client(ctx) as client:
        items = client.models()
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    out.print(model_table(items))


@models_app.command("show", epilog=EXIT_CODES)
@friendly_errors
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="name (latest version) or name:version"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A model's classes, scores, training curve and versions."""
    with _client(ctx) as client:
        detail = client.model(name)
    if as_json:
        typer.echo(json.dumps(detail, indent=2))
        return
    table = Table(Column("", style="bold"), "", show_header=False, box=None)
    for key in ("ref", "base_model", "mode", "num_classes", "weights_sha256", "created_at", "training_job_id"):
        table.add_row(key, str(detail.get(key)))
    table.add_row("classes", ", ".join(detail.get("classes") or [])[:400] or "-")
    table.add_row("versions", ", ".join(v["ref"] for v in detail.get("versions") or []) or "-")
    out.print(table)
    if detail.get("history"):
        best = {"epoch": (detail["metrics"] or {}).get("best_epoch")}
        out.print(epoch_table({"epochs": detail["history"], "best": best}))
    if detail.get("evaluation"):
        out.print(per_class_table(detail["evaluation"]))


@models_app.command("delete", epilog=EXIT_CODES)
@friendly_errors
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="name (every version) or name:version")) -> None:
    """Delete a custom model's versions (refused while a queued or running job uses one)."""
    with _client(ctx) as client:
        client.delete_model(name)
    out.print(f"deleted {name}", highlight=False)
