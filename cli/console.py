"""Rich rendering shared by the CLI and the demo; output goes to stderr/stdout."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console()
err = Console(stderr=True)


def upload_progress() -> Callable[[int, int], None] | None:
    """A transient upload bar for interactive terminals; scripts get nothing."""
    if not err.is_terminal:
        return None
    bar = Progress(console=err, transient=True)
    task = None

    def update(sent: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("uploading", total=total)
        bar.update(task, completed=sent)
        if sent >= total:
            bar.stop()

    return update


@contextmanager
def row_progress(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rows-written bar for exports on interactive terminals; scripts get None."""
    if not err.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task(description, total=None)

    def update(done: int, expected: int) -> None:
        bar.update(task, completed=done, total=expected or None)

    with bar:
        yield update


def render_job(data: dict[str, Any]) -> Table:
    """A two-column table of a job's fields."""
    table = Table(show_header=False, box=None)
    counts = data.get("counts") or {}
    rate, eta = data.get("images_per_second"), data.get("eta_seconds")
    rows = [
        ("id", data.get("id")),
        ("state", data.get("state")),
        ("model", data.get("model")),
        ("precision", data.get("precision")),
        ("decode", data.get("decode") or "-"),
        ("counts", ", ".join(f"{k} {v}" for k, v in counts.items())),
        ("progress", f"{100 * (data.get('progress') or 0):.0f}%"),
        ("images/s", f"{rate:.1f}" if rate else "-"),
        ("eta", f"{eta:.0f}s" if eta is not None else "-"),
        ("error", data.get("error") or ""),
    ]
    rows += [(f"{k} at", v) for k, v in (data.get("timestamps") or {}).items() if v]
    rows += [(f"repro {k}", v) for k, v in (data.get("reproducibility") or {}).items()]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", str(value if value is not None else ""))
    return table


def render_results(items: list[dict[str, Any]]) -> Table:
    """index, source, status and the top-5 as 'label p' (or the error) per image."""
    table = Table("#", "source", "status", "top-5")
    for item in items:
        if item.get("error"):
            error = item["error"]
            detail = f"[red]{error.get('category')}: {error.get('message')}[/red]"
        else:
            detail = "\n".join(f"{p['label']} {p['probability']:.3f}" for p in (item.get("top_k") or [])[:5])
        table.add_row(str(item.get("index")), str(item.get("source")), str(item.get("status")), detail)
    return table
