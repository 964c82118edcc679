"""A job as the client sees it: its state and counts, waiting for it, its results and exports."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from imagebatch.client import exports
from imagebatch.client.errors import WaitTimeout
from imagebatch.client.files import RowProgress

if TYPE_CHECKING:  # pandas is imported on first use so the CLI starts quickly
    import pandas as pd

FINAL_STATES = frozenset({"completed", "failed", "cancelled"})


class JobClient(Protocol):
    """What a Job asks of the client that made it (imagebatch.client.Client)."""

    def get_job(self, job_id: str) -> "Job": ...

    def iter_results(self, job_id: str, *, page_size: int = ..., **filters: Any) -> Iterator[dict[str, Any]]: ...

    def results(self, job_id: str, *, limit: int | None = None, **filters: Any) -> "pd.DataFrame": ...

    def export_csv(
        self,
        job_id: str,
        path: str | Path,
        probabilities: bool = False,
        on_progress: RowProgress | None = None,
        expected: int = 0,
        **filters: Any,
    ) -> Path: ...

    def similar(
        self, image: str | tuple[str, int], index: int | None = None, *, k: int = 10, scope: str = "job"
    ) -> "pd.DataFrame": ...


class Job:
    """A job as last seen by the client; refresh() or wait() fetch it again.

    `data` is the API's JSON for the job; the common fields are properties.
    """

    def __init__(self, client: JobClient, data: dict[str, Any]) -> None:
        self.client, self.data = client, data

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, state={self.state!r}, counts={self.counts})"

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def state(self) -> str:
        return self.data["state"]

    @property
    def counts(self) -> dict[str, int]:
        return self.data.get("counts") or {}

    @property
    def reproducibility(self) -> dict[str, Any] | None:
        return self.data.get("reproducibility")

    @property
    def base_model(self) -> str:
        """The architecture (a custom model's base): what the result sizes follow."""
        return self.data.get("base_model") or self.data["model"]

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def refresh(self) -> "Job":
        self.data = self.client.get_job(self.id).data
        return self

    def wait(
        self,
        poll: float = 0.5,
        timeout: float | None = None,
        progress: bool = False,
        check: Callable[[], None] | None = None,
    ) -> "Job":
        """Poll until completed/failed/cancelled; progress=True draws a live bar on stderr.

        `check()` runs before every poll and may raise to give up early (e.g. a dead worker).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if progress:
            from imagebatch.client.progress import JobProgress  # rich loads only for a bar

        view = JobProgress(self.id) if progress else None
        try:
            while True:
                if check:
                    check()
                self.refresh()
                if view:
                    view.update(self.data, self.done)
                if self.done:
                    return self
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(f"job {self.id} still {self.state} after {timeout:g}s")
                time.sleep(poll)
        finally:
            if view:
                view.stop()

    def results(self, **filters: Any) -> "pd.DataFrame":
        return self.client.results(self.id, **filters)

    def export(
        self,
        path: str | Path,
        format: str | None = None,
        probabilities: bool = False,
        on_progress: RowProgress | None = None,
        **filters: Any,
    ) -> Path:
        """Write the results to `path`: "csv" (streamed from the API), "parquet", or "npy"
        (embeddings, row i = image i, NaN where none); default from the suffix, else CSV.

        `on_progress(rows, expected)` follows the export; filters apply to csv and parquet.
        """
        path = Path(path)
        chosen = exports.format_for(path, format)
        expected = self.counts.get("total", 0)
        if chosen == "csv":
            return self.client.export_csv(
                self.id, path, probabilities=probabilities, on_progress=on_progress, expected=expected, **filters
            )
        if chosen == "parquet":
            include = ["embedding", "probabilities"] if probabilities else ["embedding"]
            items = self.client.iter_results(self.id, page_size=exports.PAGE_SIZE, include=include, **filters)
            return exports.write_parquet(
                items,
                path,
                model=self.base_model,
                probabilities=probabilities,
                expected=expected,
                on_progress=on_progress,
                reproducibility=self.reproducibility,
            )
        if filters or probabilities:
            raise ValueError("embeddings (.npy) export takes every image: no filters or probabilities")
        items = self.client.iter_results(self.id, page_size=exports.PAGE_SIZE, include="embedding")
        return exports.write_embeddings(
            items, path, job_id=self.id, model=self.base_model, total=expected, on_progress=on_progress
        )

    def similar(self, index: int, k: int = 10, scope: str = "job") -> "pd.DataFrame":
        return self.client.similar(self.id, index, k=k, scope=scope)
