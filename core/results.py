"""The per-image result, defined once: its stored columns, the JSON item, CSV rows and the Parquet table."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imagebatch.core.catalog import MODELS

# Stored vectors are raw little-endian bytes; embeddings in the dtype the job's record names.
EMBEDDING_DTYPES = {"float32": "<f4", "float16": "<f2"}
PROBABILITY_DTYPE = "<f4"

# An image row's columns, in three groups: set at submission, set when the image finishes
# (either way), and what a worker computed for a processed image (all null for a failed one).
IDENTITY_COLUMNS = ("idx", "source", "true_label")  # true_label: an evaluation image's class
OUTCOME_COLUMNS = ("status", "error_category", "error_message", "processed_at")
RESULT_COLUMNS = (
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
    "top1_index",
    "top1_label",
    "confidence",
    "top5_mean",
    "margin",
    "entropy",
    "topk",
    "embedding",
    "probabilities",
)
STORED_COLUMNS = IDENTITY_COLUMNS + OUTCOME_COLUMNS + RESULT_COLUMNS
# The heavy vectors: read, decoded and sent only when asked for.
INCLUDABLE = ("embedding", "probabilities")

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


def output_sizes(base_model: str, reproducibility: dict | None) -> tuple[int, int]:
    """(embedding size, number of classes) of a job's results: a custom model's from the job's record,
    which its first chunk writes, else the catalog's (the base architecture's embedding, 1000 classes)."""
    spec = MODELS[base_model]
    record = reproducibility or {}
    return int(record.get("embedding_dim", spec.embedding_dim)), int(record.get("num_classes", spec.num_classes))


def check_embedding_dtype(name: str) -> str:
    """The numpy dtype of an EMBEDDING_DTYPE setting; a clear error for anything else."""
    if name not in EMBEDDING_DTYPES:
        raise ValueError(f"IMAGEBATCH_EMBEDDING_DTYPE must be float32 or float16, not {name!r}")
    return EMBEDDING_DTYPES[name]


def embedding_dtype(reproducibility: dict | None) -> str:
    """numpy dtype of a job's stored embeddings, from its reproducibility record (float32 unless it says)."""
    return EMBEDDING_DTYPES.get((reproducibility or {}).get("embedding_dtype", "float32"), "<f4")


def encode_vector(values: Any, dtype: str) -> bytes:
    return np.asarray(values).astype(dtype).tobytes()


def decode_vector(raw: bytes | None, dtype: str = PROBABILITY_DTYPE) -> list[float] | None:
    """Raw little-endian bytes as written by the worker -> a list of Python floats."""
    if raw is None:
        return None
    return np.frombuffer(raw, dtype=dtype).astype(np.float64).tolist()


def stored_result(
    *,
    width: int,
    height: int,
    mode: str,
    format: str | None,
    mean: Sequence[float],
    std: Sequence[float],
    topk: list[dict],
    confidence: float,
    top5_mean: float,
    margin: float,
    entropy: float,
    embedding: Any,
    embedding_dtype: str,
    probabilities: Any = None,
) -> dict[str, Any]:
    """A processed image's RESULT_COLUMNS, as the worker writes them (`embedding_dtype`: the setting)."""
    best = topk[0]
    return {
        "width": width,
        "height": height,
        "mode": mode,
        "format": format,
        "mean_r": mean[0],
        "mean_g": mean[1],
        "mean_b": mean[2],
        "std_r": std[0],
        "std_g": std[1],
        "std_b": std[2],
        "top1_index": best["index"],
        "top1_label": best["label"],
        "confidence": confidence,
        "top5_mean": top5_mean,
        "margin": margin,
        "entropy": entropy,
        "topk": topk,
        "embedding": encode_vector(embedding, check_embedding_dtype(embedding_dtype)),
        "probabilities": None if probabilities is None else encode_vector(probabilities, PROBABILITY_DTYPE),
    }


def item_columns(include: Iterable[str] = ()) -> tuple[str, ...]:
    """The stored columns an item is made from: heavy vectors only when included."""
    include = set(include)
    return tuple(name for name in STORED_COLUMNS if name not in INCLUDABLE or name in include)


def utc(value: datetime | str | None) -> datetime | None:
    """A stored time (SQLite's are naive, all are UTC) or the JSON item's ISO text -> aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _triple(row: Mapping[str, Any], *names: str) -> list[float] | None:
    return None if row[names[0]] is None else [row[name] for name in names]


def item_from_columns(
    row: Mapping[str, Any], *, embedding_dtype: str = "<f4", include: Iterable[str] = ()
) -> dict[str, Any]:
    """The JSON item of one image from its stored columns (item_columns(include) of them).

    `embedding_dtype` is the job's, as embedding_dtype() reads it from the job's record.
    """
    error = None
    if row["error_category"] is not None or row["error_message"] is not None:
        error = {"category": row["error_category"], "message": row["error_message"]}
    item: dict[str, Any] = {
        "index": row["idx"],
        "source": row["source"],
        # Set for an evaluation's images; rows built by hand for a classification may leave it out.
        "true_label": row.get("true_label"),
        "status": row["status"],
        "error": error,
        "width": row["width"],
        "height": row["height"],
        "mode": row["mode"],
        "format": row["format"],
        "channel_mean": _triple(row, "mean_r", "mean_g", "mean_b"),
        "channel_std": _triple(row, "std_r", "std_g", "std_b"),
        "top_k": row["topk"],
        "top1_label": row["top1_label"],
        "confidence": row["confidence"],
        "top5_mean": row["top5_mean"],
        "margin": row["margin"],
        "entropy": row["entropy"],
        "processed_at": utc(row["processed_at"]),
    }
    include = set(include)
    if "embedding" in include:
        item["embedding"] = decode_vector(row["embedding"], embedding_dtype)
    if "probabilities" in include:
        item["probabilities"] = decode_vector(row["probabilities"], PROBABILITY_DTYPE)
    return item


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
