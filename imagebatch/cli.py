"""The `imagebatch` command line: run the services, submit jobs, inspect and export results."""

import enum
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Column, Table

from imagebatch.client import ApiError, ApiUnreachable, Client, Job, NotFound, Unauthorized
from imagebatch.config import MODEL_NAMES, PRECISIONS, settings
from imagebatch.console import err, out, render_job, render_results, row_progress, upload_progress
from imagebatch.keys_cli import keys_app

EXIT_CODES = (
    "Exit codes: 0 success; 1 the job ended failed or cancelled (--wait), or the demo could not finish; "
    "2 bad arguments or input files; 3 API unreachable; 4 no such job; 5 any other API error; "
    "6 API key missing, wrong or revoked; 130 interrupted."
)
EXIT_JOB_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_NOT_FOUND, EXIT_API_ERROR, EXIT_AUTH = 1, 2, 3, 4, 5, 6

ModelName = enum.Enum("ModelName", {m: m for m in MODEL_NAMES}, type=str)
Precision = enum.Enum("Precision", {p: p for p in PRECISIONS}, type=str)
ExportFormat = enum.Enum("ExportFormat", {"csv": "csv", "parquet": "parquet", "npy": "npy"}, type=str)
Scope = enum.Enum("Scope", {"job": "job", "model": "model"}, type=str)

app = typer.Typer(
    help=f"imagebatch: bulk image classification with ResNet.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
)
weights_app = typer.Typer(help="Model weights helpers.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
app.add_typer(keys_app, name="keys")


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn client errors into one line on stderr and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ApiUnreachable as exc:
            raise _fail(str(exc), EXIT_UNREACHABLE) from None
        except NotFound as exc:
            raise _fail(f"not found: {exc.detail}", EXIT_NOT_FOUND) from None
        except Unauthorized as exc:
            raise _fail(f"not authorised: {exc.detail}", EXIT_AUTH) from None
        except ApiError as exc:
            raise _fail(str(exc), EXIT_API_ERROR) from None
        except (ValueError, FileNotFoundError) as exc:
            raise _fail(str(exc), EXIT_USAGE) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None

    return wrapper


@app.callback()
def main(
    ctx: typer.Context,
    url: str = typer.Option(settings.API_URL, "--url", envvar="IMAGEBATCH_API_URL", help="API address."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="IMAGEBATCH_API_KEY", help="Bearer token."),
) -> None:
    """Global options shared by the client commands."""
    # No logging set-up here: `serve` and `worker` configure their own from IMAGEBATCH_LOG_LEVEL.
    ctx.obj = {"url": url, "api_key": api_key}


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["url"], api_key=ctx.obj["api_key"])


# --- services -------------------------------------------------------------------------------


@app.command()
def serve(
    host: str = typer.Option(settings.API_HOST, help="Interface to bind."),
    port: int = typer.Option(settings.API_PORT, help="TCP port."),
) -> None:
    """Run the HTTP API (uvicorn)."""
    from api.main import run

    run(host=host, port=port)


@app.command()
def worker(
    models: str | None = typer.Option(None, help="Comma-separated models. Default: IMAGEBATCH_WORKER_MODELS."),
    loglevel: str = typer.Option(settings.LOG_LEVEL, help="Celery log level."),
    burst: bool = typer.Option(False, "--burst", help="Exit once the queues are empty."),
) -> None:
    """Run one Celery worker process (loads each model once, needs torch)."""
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    unknown = sorted(set(chosen or ()) - set(MODEL_NAMES))
    if unknown:
        raise _fail(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}", EXIT_USAGE)
    from worker.main import run_worker

    raise typer.Exit(run_worker(chosen, loglevel, burst=burst))


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    from sqlalchemy.engine import make_url

    from db.migrate import upgrade_to_head

    upgrade_to_head()
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    out.print(f"database {shown} is at the latest schema", highlight=False)


# --- jobs -----------------------------------------------------------------------------------


@app.command(epilog=EXIT_CODES)
@friendly_errors
def submit(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ..., help="Image files and folders, one .zip/.tar/.tar.gz, http(s) URLs, or a .txt/.json URI manifest."
    ),
    model: ModelName | None = typer.Option(None, help=f"Default: {settings.DEFAULT_MODEL}."),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Predictions kept per image. Default: 5."),
    store_probabilities: bool = typer.Option(False, "--store-probabilities", help="Keep all 1000 probabilities."),
    precision: Precision | None = typer.Option(None, help=f"Default: {settings.DEFAULT_PRECISION}."),
    wait: bool = typer.Option(False, "--wait", help="Show live progress until the job ends."),
    callback_url: str | None = typer.Option(None, "--callback-url", help="POSTed (HMAC-signed) when the job ends."),
    as_json: bool = typer.Option(False, "--json", help="Print the job document instead of its id."),
) -> None:
    """Submit a job and print its id (alone on stdout, for scripts)."""
    with _client(ctx) as client:
        job = client.submit(
            paths,
            model=model.value if model else None,
            top_k=top_k,
            store_probabilities=store_probabilities or None,
            precision=precision.value if precision else None,
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
        table.add_row(job.id, job.state, job.data.get("model"), f"{done}/{c.get('total', 0)}",
                      str(c.get("failed", 0)), str(created))
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
    filters = dict(label=label, min_confidence=min_confidence, max_confidence=max_confidence,
                   max_entropy=max_entropy, status=status_, errors_only=errors_only)
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
        None, "--format", help="Default from the suffix: .parquet/.pq, .npy (embeddings, row i = image i), else csv."),
) -> None:
    """Write a job's results to CSV (streamed), Parquet, or its embeddings to .npy."""
    with _client(ctx) as client:
        job = client.get_job(job_id)
        with row_progress(f"exporting {job_id[:12]}") as on_progress:
            path = job.export(out_path, format=fmt.value if fmt else None, probabilities=probabilities,
                              on_progress=on_progress)
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
        table.add_row(row.job_id, str(row.index), f"{row.similarity:.4f}", str(row.top1_label),
                      f"{row.confidence:.3f}" if row.confidence is not None else "-", str(row.source))
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


@app.command(epilog=EXIT_CODES)
def demo(
    images: int = typer.Option(16, "--images", min=1, help="How many sample photos to classify."),
    random_weights: bool | None = typer.Option(
        None, "--random-weights/--no-random-weights",
        help="Use seeded random weights when the real ones cannot be had. "
        "Default: yes when not interactive, ask when stdin is a terminal.",
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's data folder (database, uploads, logs)."),
) -> None:
    """Run the whole service on this machine with no configuration and classify sample photos."""
    from imagebatch.demo import run_demo

    raise typer.Exit(run_demo(images=images, random_weights=random_weights, keep=keep))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(ctx: typer.Context) -> None:
    """Throughput benchmark: seed loop, offline script, model bound, decode, service e2e (see `bench --help`)."""
    from imagebatch.bench.cli import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


@weights_app.command("random")
def weights_random(
    model: ModelName,
    torch_home: Path | None = typer.Option(None, help="Default: $TORCH_HOME, else ~/.cache/torch."),
    seed: int = typer.Option(0, help="Seed for the random initialisation."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing weights file."),
) -> None:
    """Write a seeded RANDOM checkpoint under the official file name (for offline tests only)."""
    from imagebatch.demo import checkpoint_path, torch_home_dir

    home = (torch_home or torch_home_dir()).expanduser().resolve()
    target = checkpoint_path(model.value, home)
    if target.exists() and not force:
        raise _fail(f"{target} already exists (real weights?); pass --force to overwrite it", EXIT_USAGE)
    from worker.random_weights import write_random_checkpoint

    path = write_random_checkpoint(model.value, home, seed=seed)
    err.print(f"[bold yellow]RANDOM WEIGHTS[/bold yellow] written to {path} (seed {seed}); "
              "predictions made with them are meaningless.", highlight=False)
    typer.echo(str(path))


if __name__ == "__main__":
    app()
