"""Write a job's results to a file: CSV (streamed by the API), Parquet, or embeddings as .npy."""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from imagebatch.client.files import RowProgress, paged, replace_into
from imagebatch.core.catalog import MODELS

FORMATS = ("csv", "parquet", "npy")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}
PAGE_SIZE = 250  # results per request (vectors make them large), and rows per Parquet row group


def format_for(path: Path, chosen: str | None = None) -> str:
    """The explicit format, else the one the file suffix names, else CSV."""
    if chosen:
        if chosen not in FORMATS:
            raise ValueError(f"unknown export format {chosen!r}: use {', '.join(FORMATS)}")
        return chosen
    return _SUFFIXES.get(path.suffix.lower(), "csv")


def write_parquet(
    items: Iterable[dict[str, Any]],
    path: Path,
    *,
    model: str,
    probabilities: bool,
    expected: int,
    on_progress: RowProgress | None = None,
    reproducibility: dict | None = None,
) -> Path:
    """One row per image in core.result_files' Parquet schema, with embeddings: the API's results.parquet table.

    `model` is the job's base architecture; a custom model's sizes come from the job's `reproducibility`.
    """
    from imagebatch.core import result_files, results

    embedding_size, num_classes = results.output_sizes(model, reproducibility)
    count = num_classes if probabilities else 0
    schema = result_files.arrow_schema(embedding_size=embedding_size, probability_count=count)

    def write(target: Path) -> None:
        with open(target, "wb") as out:
            for chunk in result_files.parquet_chunks(paged(items, PAGE_SIZE, expected, on_progress), schema):
                out.write(chunk)

    return replace_into(path, write)


def write_embeddings(
    items: Iterable[dict[str, Any]],
    path: Path,
    *,
    job_id: str,
    model: str,
    total: int,
    on_progress: RowProgress | None = None,
) -> Path:
    """A float32 matrix whose row i is image i's embedding; NaN rows for images without one."""
    import numpy as np

    from imagebatch.core.result_files import embedding_matrix

    items = [item for page in paged(items, PAGE_SIZE, total, on_progress) for item in page]
    if not any(item.get("embedding") for item in items):
        raise ValueError(f"job {job_id} has no embeddings yet (no image finished successfully)")
    rows = max([total, *(item["index"] + 1 for item in items)])
    matrix = embedding_matrix(items, rows=rows, size=MODELS[model].embedding_dim)

    def save(target: Path) -> None:
        with open(target, "wb") as handle:  # a handle: np.save would append ".npy" to a bare name
            np.save(handle, matrix)

    return replace_into(path, save)
