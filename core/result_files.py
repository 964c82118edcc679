"""Results as files: CSV header and rows, the Parquet schema and table, the embedding matrix, from core.results."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imagebatch.core.results import utc

CSV_BASE_COLUMNS = (
    "index",
    "source",
    "status",
    "error_category",
    "error_message",
    "width",
    "height",
    "mode",
    "format",
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "confidence",
    "top5_mean",
    "margin",
    "entropy",
)
_NO_TRIPLE = (None, None, None)
# What makes a spreadsheet read a cell as a formula (OWASP, CSV injection): text starting with
# one of these is exported with a leading single quote, so it shows as text and never runs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def probability_columns(labels: Sequence[str]) -> list[str]:
    """ "p_<label>", with the class index appended to every label that occurs more than once."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [f"p_{label}_{i}" if seen[label] > 1 else f"p_{label}" for i, label in enumerate(labels)]


def csv_header(top_k: int, probability_names: Sequence[str] | None = None, labelled: bool = False) -> list[str]:
    """The CSV columns; `labelled` (an evaluation) adds true_label after source."""
    columns = list(CSV_BASE_COLUMNS)
    if labelled:
        columns.insert(columns.index("source") + 1, "true_label")
    for i in range(1, top_k + 1):
        columns += [f"top{i}_label", f"top{i}_index", f"top{i}_probability"]
    return columns + list(probability_names or ())


def csv_text(value: Any) -> Any:
    """A CSV cell: text a spreadsheet would run as a formula gets a leading "'"; anything else
    (numbers above all: -0.5 stays a number) is left as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(item: Mapping[str, Any], top_k: int, *, probability_count: int = 0, labelled: bool = False) -> list[Any]:
    """One JSON item as a CSV line's values, in csv_header order; None becomes an empty cell.

    Text cells (file names, error messages, labels...) go through csv_text; JSON and Parquet
    keep the raw values. probability_count > 0 appends that many probability cells (empty for
    unprocessed images).
    """
    error = item["error"] or {}
    row: list[Any] = [
        item["index"],
        item["source"],
        *([item.get("true_label")] if labelled else []),
        item["status"],
        error.get("category"),
        error.get("message"),
        item["width"],
        item["height"],
        item["mode"],
        item["format"],
        *(item["channel_mean"] or _NO_TRIPLE),
        *(item["channel_std"] or _NO_TRIPLE),
        item["confidence"],
        item["top5_mean"],
        item["margin"],
        item["entropy"],
    ]
    entries = item["top_k"] or []
    for i in range(top_k):
        entry = entries[i] if i < len(entries) else {}
        row += [entry.get("label"), entry.get("index"), entry.get("probability")]
    row = [csv_text(value) for value in row]
    if probability_count:
        probs = item.get("probabilities")
        # 9 significant digits round-trip a float32 exactly while keeping the file compact.
        row += [f"{p:.9g}" for p in probs] if probs else [None] * probability_count
    return row


def _list(element: pa.DataType, size: int = -1) -> pa.DataType:
    # "element" is Parquet's own name for list items, so a schema read back equals this one.
    return pa.list_(pa.field("element", element), size)


TOP_K_ENTRY = pa.struct([("index", pa.int32()), ("label", pa.string()), ("probability", pa.float64())])


def arrow_schema(*, embedding_size: int, probability_count: int = 0) -> pa.Schema:
    """The Parquet table's schema: the JSON item's fields, typed, its error split in two columns.

    `embedding` is always there (null where an image has none); `probabilities` when counted.
    """
    fields = [
        pa.field("index", pa.int32(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("true_label", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_category", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("mode", pa.string()),
        pa.field("format", pa.string()),
        pa.field("channel_mean", _list(pa.float64(), 3)),
        pa.field("channel_std", _list(pa.float64(), 3)),
        pa.field("top_k", _list(TOP_K_ENTRY)),
        pa.field("top1_label", pa.string()),
        *(pa.field(name, pa.float64()) for name in ("confidence", "top5_mean", "margin", "entropy")),
        pa.field("processed_at", pa.timestamp("us", tz="UTC")),
        pa.field("embedding", _list(pa.float32(), embedding_size)),
    ]
    if probability_count:
        fields.append(pa.field("probabilities", _list(pa.float32(), probability_count)))
    return pa.schema(fields)


def _arrow_row(item: Mapping[str, Any]) -> dict[str, Any]:
    error = item.get("error") or {}
    return {
        **item,
        "error_category": error.get("category"),
        "error_message": error.get("message"),
        "processed_at": utc(item.get("processed_at")),
    }


def arrow_table(items: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """JSON items (as the API builds them, or as a client decoded them) -> rows of `schema`."""
    return pa.Table.from_pylist([_arrow_row(item) for item in items], schema=schema)


class _Drain:
    """A write-only file that hands out what was written since it was last drained."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:  # the writer records row-group offsets from this
        return self._written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def parquet_chunks(pages: Iterable[Sequence[Mapping[str, Any]]], schema: pa.Schema) -> Iterator[bytes]:
    """A Parquet file of every page of items, a row group per page, as bytes while it is written."""
    drain = _Drain()
    with pq.ParquetWriter(pa.PythonFile(drain, mode="w"), schema) as writer:
        for page in pages:
            if page:
                writer.write_table(arrow_table(page, schema))
                yield drain.drain()
    yield drain.drain()


def embedding_matrix(items: Iterable[Mapping[str, Any]], *, rows: int, size: int) -> np.ndarray:
    """float32 [rows, size] whose row i is image i's embedding; NaN rows for images without one."""
    matrix = np.full((rows, size), np.nan, dtype=np.float32)
    for item in items:
        if item.get("embedding") is not None:
            matrix[item["index"]] = np.asarray(item["embedding"], dtype=np.float32)
    return matrix
