"""The per-image result, defined once: its stored columns, how the worker fills them, the JSON item made from them."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

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
