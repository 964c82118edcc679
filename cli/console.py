"""Rich rendering shared by the CLI, the demo and Job.wait(progress=True); output goes to stderr/stdout."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console()
err = Console(stderr=True)


class JobProgress:
    """Rich progress bar: done/total, images/s and ETA from the API, failures so far."""

    def __init__(self, job_id: str) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(),
            console=err,
        )
        self.task = self.bar.add_task(job_id, total=None, rate="", eta="-", failed="")
        self.bar.start()

    def update(self, job: dict[str, Any], final: bool) -> None:
        """Redraw from the API's job document."""
        counts = job.get("counts") or {}
        total = counts.get("total") or 0
        done = total - counts.get("pending", 0) if "pending" in counts else counts.get("succeeded", 0)
        rate, eta = job.get("images_per_second"), job.get("eta_seconds")
        failed = counts.get("failed", 0)
        self.bar.update(
            self.task, total=total or None, completed=done, description=f"{job['id']} {job['state']}",
            rate=f"{rate:.1f} img/s" if rate else "- img/s",
            eta=f"{eta:.0f}s" if eta is not None and not final else "-",
            failed=f"[red]{failed} failed[/red]" if failed else "0 failed",
        )

    def stop(self) -> None:
        self.bar.stop()


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
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True)
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
        ("id", data.get("id")), ("state", data.get("state")), ("model", data.get("model")),
        ("counts", ", ".join(f"{k} {v}" for k, v in counts.items())),
        ("progress", f"{100 * (data.get('progress') or 0):.0f}%"),
        ("images/s", f"{rate:.1f}" if rate else "-"), ("eta", f"{eta:.0f}s" if eta is not None else "-"),
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
