"""A live progress bar on stderr for Job.wait(progress=True): done/total, images/s, ETA, failures."""

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

err = Console(stderr=True)


class JobProgress:
    """Rich progress bar: done/total, images/s and ETA from the API, failures so far."""

    def __init__(self, job_id: str) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
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
            self.task,
            total=total or None,
            completed=done,
            description=f"{job['id']} {job['state']}",
            rate=f"{rate:.1f} img/s" if rate else "- img/s",
            eta=f"{eta:.0f}s" if eta is not None and not final else "-",
            failed=f"[red]{failed} failed[/red]" if failed else "0 failed",
        )

    def stop(self) -> None:
        self.bar.stop()
