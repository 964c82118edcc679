"""Write a job's results to a file: CSV (streamed by the API), Parquet, or embeddings as .npy."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagebatch.core.catalog import MODELS

if TYPE_CHECKING:
    from imagebatch.client import Client

FORMATS = ("csv", "parquet", "npy")
RowProgress = Callable[[int, int], None]  # (rows written, rows expected)
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}
_PAGE_SIZE = 250  # results per request (vectors make them large), and rows per Parquet row group


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


def _pages(client: "Client", job_id: str, expected: int, on_progress: RowProgress | None,
           **query: Any) -> Iterator[list[dict]]:
    """The matching JSON items, a page at a time, reporting rows fetched so far."""
    page: list[dict] = []
    fetched = 0
    for item in client.iter_results(job_id, page_size=_PAGE_SIZE, **query):
        page.append(item)
        fetched += 1
        if on_progress and fetched % 100 == 0:
            on_progress(fetched, expected)
        if len(page) == _PAGE_SIZE:
            yield page
            page = []
    yield page
    if on_progress:
        on_progress(fetched, max(expected, fetched))


def write_parquet(client: "Client", job_id: str, path: Path, *, model: str, probabilities: bool, expected: int,
                  on_progress: RowProgress | None = None, **filters: Any) -> Path:
    """One row per image in core.results' Parquet schema, with embeddings: the API's results.parquet table."""
    from imagebatch.core import results

    spec = MODELS[model]
    schema = results.arrow_schema(
        embedding_size=spec.embedding_dim, probability_count=spec.num_classes if probabilities else 0)
    include = ["embedding", "probabilities"] if probabilities else ["embedding"]

    def write(target: Path) -> None:
        with open(target, "wb") as out:
            pages = _pages(client, job_id, expected, on_progress, include=include, **filters)
            for chunk in results.parquet_chunks(pages, schema):
                out.write(chunk)

    return _replace_into(path, write)


def write_embeddings(client: "Client", job_id: str, path: Path, *, model: str, total: int,
                     on_progress: RowProgress | None = None) -> Path:
    """A float32 matrix whose row i is image i's embedding; NaN rows for images without one."""
    import numpy as np

    from imagebatch.core.results import embedding_matrix

    items = [item for page in _pages(client, job_id, total, on_progress, include="embedding") for item in page]
    if not any(item.get("embedding") for item in items):
        raise ValueError(f"job {job_id} has no embeddings yet (no image finished successfully)")
    rows = max([total, *(item["index"] + 1 for item in items)])
    matrix = embedding_matrix(items, rows=rows, size=MODELS[model].embedding_dim)

    def save(target: Path) -> None:
        with open(target, "wb") as handle:  # a handle: np.save would append ".npy" to a bare name
            np.save(handle, matrix)

    return _replace_into(path, save)
