"""Commands that talk to the API: submit, status, list, results, export, similar, cancel, delete."""

import enum
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Column, Table

from imagebatch.cli.common import (
    EXIT_API_ERROR,
    EXIT_AUTH,
    EXIT_CODES,
    EXIT_JOB_FAILED,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    fail,
)
from imagebatch.cli.console import err, out, render_job, render_results, row_progress, upload_progress
from imagebatch.client import ApiError, ApiUnreachable, Client, Job, NotFound, Unauthorized
from imagebatch.core.config import DECODE_MODES, settings
from imagebatch.core.options import PRECISIONS, JobOptions

Precision = enum.Enum("Precision", {p: p for p in PRECISIONS}, type=str)  # type: ignore[misc]  # as ModelName
DecodeMode = enum.Enum("DecodeMode", {m: m for m in DECODE_MODES}, type=str)  # type: ignore[misc]  # as ModelName
ExportFormat = enum.Enum("ExportFormat", {"csv": "csv", "parquet": "parquet", "npy": "npy"}, type=str)
Scope = enum.Enum("Scope", {"job": "job", "model": "model"}, type=str)

app = typer.Typer()


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn client errors into one line on stderr and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ApiUnreachable as exc:
            raise fail(str(exc), EXIT_UNREACHABLE) from None
        except NotFound as exc:
            raise fail(f"not found: {exc.detail}", EXIT_NOT_FOUND) from None
        except Unauthorized as exc:
            raise fail(f"not authorised: {exc.detail}", EXIT_AUTH) from None
        except ApiError as exc:
            raise fail(str(exc), EXIT_API_ERROR) from None
        except (ValueError, FileNotFoundError) as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["url"], api_key=ctx.obj["api_key"])


@app.command(epilog=EXIT_CODES)
@friendly_errors
def submit(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ..., help="Image files and folders, one .zip/.tar/.tar.gz, http(s) URLs, or a .txt/.json URI manifest."
    ),
    model: str | None = typer.Option(
        None,
        help=f"resnet18, resnet50, or a custom model's name[:version] (imagebatch models list). "
        f"Default: {settings.DEFAULT_MODEL}.",
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", min=1, help=f"Predictions kept per image. Default: {JobOptions.model_fields['top_k'].default}."
    ),
    store_probabilities: bool = typer.Option(False, "--store-probabilities", help="Keep all 1000 probabilities."),
    precision: Precision | None = typer.Option(None, help=f"Default: {settings.DEFAULT_PRECISION}."),
    decode: DecodeMode | None = typer.Option(
        None,
        help="exact: torchvision's preprocessing bit for bit; fast: reduced-scale JPEG decode, about twice as quick. "
        "Default: exact with --precision fp32, else the API's IMAGEBATCH_DECODE_MODE.",
    ),
    wait: bool = typer.Option(False, "--wait", help="Show live progress until the job ends."),
    callback_url: str | None = typer.Option(
        None,
        "--callback-url",
        help="POSTed (HMAC-signed) when the job ends; the server needs IMAGEBATCH_WEBHOOK_SECRET.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the job document instead of its id."),
) -> None:
    """Submit a job and print its id (alone on stdout, for scripts)."""
    with _client(ctx) as client:
        job = client.submit(
            paths,
            model=model,
            top_k=top_k,
            store_probabilities=store_probabilities or None,
            precision=precision.value if precision else None,
            decode=decode.value if decode else None,
            callback_url=callback_url,
            on_progress=upload_progress(),
        )
        typer.echo(json.dumps(job.data, indent=2) if as_json else job.id)
        if wait:
            raise typer.Exit(finish(job))


def finish(job: Job) -> int:
    """Wait with a live bar, print a one-line summary on stderr, return the exit code."""
    job.wait(progress=True)
    counts = job.counts
    err.print(
        f"job {job.id} {job.state}: {counts.get('succeeded', 0)} succeeded, "
        f"{counts.get('failed', 0)} failed of {counts.get('total', 0)}"
        + (f" ({job.data.get('error')})" if job.data.get("error") else ""),
        highlight=False,
    )
    return 0 if job.state == "completed" else EXIT_JOB_FAILED


@app.command(epilog=EXIT_CODES)
@friendly_errors
def status(ctx: typer.Context, job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a job's state, counts, speed and reproducibility record."""
    with _client(ctx) as client:
        job = client.get_job(job_id)
    if as_json:
        typer.echo(json.dumps(job.data, indent=2))
    else:
        out.print(render_job(job.data))


@app.command("list", epilog=EXIT_CODES)
@friendly_errors
def list_jobs(
    ctx: typer.Context,
    state: str | None = typer.Option(None, help="Only jobs in this state."),
    limit: int = typer.Option(20, min=1, help="At most this many jobs."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List recent jobs."""
    with _client(ctx) as client:
        jobs = client.list_jobs(state=state, limit=limit)
    if as_json:
        typer.echo(json.dumps([j.data for j in jobs], indent=2))
        return
    # Ids must stay whole to be copied into other commands.
    table = Table(Column("id", no_wrap=True, min_width=32), "state", "model", "done/total", "failed", "created")
    for job in jobs:
        c = job.counts
        done = c.get("total", 0) - c.get("pending", 0)
        created = (job.data.get("timestamps") or {}).get("created", "")
        table.add_row(
            job.id,
            job.state,
            job.data.get("model"),
            f"{done}/{c.get('total', 0)}",
            str(c.get("failed", 0)),
            str(created),
        )
    out.print(table)


@app.command(epilog=EXIT_CODES)
@friendly_errors
def results(
    ctx: typer.Context,
    job_id: str,
    label: str | None = typer.Option(None, help="Top-1 label equals this."),
    min_confidence: float | None = typer.Option(None),
    max_confidence: float | None = typer.Option(None),
    max_entropy: float | None = typer.Option(None),
    status_: str | None = typer.Option(None, "--status", help="ok, error, pending, cancelled."),
    errors_only: bool = typer.Option(False, "--errors-only"),
    limit: int = typer.Option(50, min=1, help="At most this many rows."),
    as_json: bool = typer.Option(False, "--json", help="JSON array of the API's result items."),
) -> None:
    """Show per-image results: top-5 predictions or the error."""
    filters = dict(
        label=label,
        min_confidence=min_confidence,
        max_confidence=max_confidence,
        max_entropy=max_entropy,
        status=status_,
        errors_only=errors_only,
    )
    with _client(ctx) as client:
        items = []
        for item in client.iter_results(job_id, page_size=min(limit, 500), **filters):
            items.append(item)
            if len(items) >= limit:
                break
    if as_json:
        typer.echo(json.dumps(items, indent=2))
    else:
        out.print(render_results(items))


@app.command(epilog=EXIT_CODES)
@friendly_errors
def export(
    ctx: typer.Context,
    job_id: str,
    out_path: Path = typer.Option(..., "--out", help="File to write."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Add all 1000 probabilities (if stored)."),
    fmt: ExportFormat | None = typer.Option(
        None, "--format", help="Default from the suffix: .parquet/.pq, .npy (embeddings, row i = image i), else csv."
    ),
) -> None:
    """Write a job's results to CSV (streamed), Parquet, or its embeddings to .npy."""
    with _client(ctx) as client:
        job = client.get_job(job_id)
        with row_progress(f"exporting {job_id[:12]}") as on_progress:
            path = job.export(
                out_path, format=fmt.value if fmt else None, probabilities=probabilities, on_progress=on_progress
            )
    err.print(f"wrote {path}", highlight=False)


@app.command(epilog=EXIT_CODES)
@friendly_errors
def similar(
    ctx: typer.Context,
    job_id: str,
    index: int,
    k: int = typer.Option(10, "-k", min=1, max=100, help="How many neighbours."),
    scope: Scope = typer.Option(Scope.job, help="Search this job, or every job of the same model."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Images whose embeddings are nearest (cosine) to image INDEX of a job."""
    with _client(ctx) as client:
        frame = client.similar(job_id, index, k=k, scope=scope.value)
    if as_json:
        typer.echo(frame.to_json(orient="records", indent=2))
        return
    table = Table(Column("job", no_wrap=True), "#", "cosine", "top-1", "confidence", "source")
    for row in frame.itertuples(index=False):
        table.add_row(
            row.job_id,
            str(row.index),
            f"{row.similarity:.4f}",
            str(row.top1_label),
            f"{row.confidence:.3f}" if row.confidence is not None else "-",
            str(row.source),
        )
    out.print(table)


@app.command(epilog=EXIT_CODES)
@friendly_errors
def cancel(ctx: typer.Context, job_id: str) -> None:
    """Stop a job: pending images are not processed."""
    with _client(ctx) as client:
        job = client.cancel(job_id)
    out.print(f"job {job.id}: {job.state}", highlight=False)


@app.command(epilog=EXIT_CODES)
@friendly_errors
def delete(ctx: typer.Context, job_id: str) -> None:
    """Delete a job, its results and its uploaded images."""
    with _client(ctx) as client:
        client.delete(job_id)
    out.print(f"deleted job {job_id}", highlight=False)
