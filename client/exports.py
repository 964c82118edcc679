"""Write a job's results to a file: CSV (streamed by the API), Parquet, or embeddings as .npy."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagebatch.client import Client

FORMATS = ("csv", "parquet", "npy")
RowProgress = Callable[[int, int], None]  # (rows written, rows expected)
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}


def format_for(path: Path, chosen: str | None = None) -> str:
    """The explicit format, else the one the file suffix names, else CSV."""
    if chosen:
        if chosen not in FORMATS:
            raise ValueError(f"unknown export format {chosen!r}: use {', '.join(FORMATS)}")
        return chosen
    return _SUFFIXES.get(path.suffix.lower(), "csv")


def _replace_into(path: Path, write: Callable[[Path], None]) -> Path:
    """Write beside the target, then rename: a failed export never leaves a half file behind."""
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


def _rows(client: "Client", job_id: str, expected: int, on_progress: RowProgress | None, **query: Any) -> list[dict]:
    rows = []
    for item in client.iter_results(job_id, **query):
        rows.append(item)
        if on_progress and len(rows) % 100 == 0:
            on_progress(len(rows), expected)
    if on_progress:
        on_progress(len(rows), max(expected, len(rows)))
    return rows


def write_parquet(client: "Client", job_id: str, path: Path, *, probabilities: bool, expected: int,
                  on_progress: RowProgress | None = None, **filters: Any) -> Path:
    """One row per image, the API's result fields (top_k as a list of structs)."""
    import pandas as pd

    from imagebatch.client.client import flatten

    include = "probabilities" if probabilities else None
    items = _rows(client, job_id, expected, on_progress, include=include, **filters)
    frame = pd.DataFrame.from_records([flatten(item) for item in items])
    return _replace_into(path, lambda target: frame.to_parquet(target, index=False, engine="pyarrow"))


def write_embeddings(client: "Client", job_id: str, path: Path, *, total: int,
                     on_progress: RowProgress | None = None) -> Path:
    """A float32 matrix whose row i is image i's embedding; NaN rows for images without one."""
    import numpy as np

    items = _rows(client, job_id, total, on_progress, include="embedding")
    width = next((len(i["embedding"]) for i in items if i.get("embedding")), 0)
    if not width:
        raise ValueError(f"job {job_id} has no embeddings yet (no image finished successfully)")
    matrix = np.full((max(total, len(items)), width), np.nan, dtype=np.float32)
    for item in items:
        if item.get("embedding"):
            matrix[item["index"]] = item["embedding"]

    def save(target: Path) -> None:
        with open(target, "wb") as handle:  # a handle: np.save would append ".npy" to a bare name
            np.save(handle, matrix)

    return _replace_into(path, save)
