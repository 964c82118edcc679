"""`imagebatch serve|worker|migrate`: run the API, a worker, or the database migration here."""

import typer

from imagebatch.cli.common import EXIT_USAGE, fail
from imagebatch.cli.console import out
from imagebatch.core.catalog import MODEL_NAMES
from imagebatch.core.config import settings
from imagebatch.core.queueing import QUEUE_KINDS

app = typer.Typer()


@app.command()
def serve(
    host: str = typer.Option(settings.API_HOST, help="Interface to bind."),
    port: int = typer.Option(settings.API_PORT, help="TCP port."),
) -> None:
    """Run the HTTP API (uvicorn)."""
    from imagebatch.api.main import run

    run(host=host, port=port)


@app.command()
def worker(
    models: str | None = typer.Option(None, help="Comma-separated models. Default: IMAGEBATCH_WORKER_MODELS."),
    queues: str | None = typer.Option(
        None,
        help="classify (the models' queues), train (training jobs) or classify,train. "
        "Default: IMAGEBATCH_WORKER_QUEUES (both).",
    ),
    loglevel: str = typer.Option(settings.LOG_LEVEL, help="Celery log level."),
    burst: bool = typer.Option(False, "--burst", help="Exit once the queues are empty."),
) -> None:
    """Run one Celery worker process (loads each model once, needs torch)."""
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    unknown = sorted(set(chosen or ()) - set(MODEL_NAMES))
    if unknown:
        raise fail(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}", EXIT_USAGE)
    kinds = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    wrong = sorted(set(kinds or ()) - set(QUEUE_KINDS))
    if wrong or kinds == []:
        raise fail(f"--queues takes {', '.join(QUEUE_KINDS)} or both (got {queues!r})", EXIT_USAGE)
    from imagebatch.worker.main import run_worker

    raise typer.Exit(run_worker(chosen, loglevel, burst=burst, queues=kinds))


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    from sqlalchemy.engine import make_url

    from imagebatch.db.migrate import upgrade_to_head

    upgrade_to_head()
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    out.print(f"database {shown} is at the latest schema", highlight=False)
