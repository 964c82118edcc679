"""Result rows for the core tests: stored columns as the worker writes them, and the JSON items made from them."""

import json
from datetime import datetime

import numpy as np

from imagebatch.core import results

LABELS = ["tench", "goldfish", "shark"]
WHEN = datetime(2026, 3, 1, 12, 30, 45, 123456)  # naive, as SQLite hands it back


def ok_columns(idx: int, *, rng: np.random.Generator, dtype: str = "float16") -> dict:
    probs = rng.dirichlet(np.ones(len(LABELS))).astype(np.float32)
    order = [int(i) for i in np.argsort(-probs)]
    topk = [{"index": i, "label": LABELS[i], "probability": float(probs[i])} for i in order[:2]]
    stored = results.stored_result(
        width=64 + idx,
        height=48,
        mode="RGB",
        format="JPEG",
        mean=(10.5, 20.25, 30.0),
        std=(1.0, 2.0, 3.5),
        topk=topk,
        confidence=float(probs[order[0]]),
        top5_mean=float(probs.mean()),
        margin=float(probs[order[0]] - probs[order[1]]),
        entropy=0.9,
        embedding=rng.normal(size=8).astype(np.float32),
        embedding_dtype=dtype,
        probabilities=probs,
    )
    return {
        "idx": idx,
        "source": f"img{idx}.jpg",
        "true_label": None,
        "status": "ok",
        "error_category": None,
        "error_message": None,
        "processed_at": WHEN,
        **stored,
    }


def failed_columns(idx: int, status: str = "error") -> dict:
    columns = dict.fromkeys(results.STORED_COLUMNS)
    columns.update(idx=idx, source=f"bad{idx}.jpg", status=status)
    if status == "error":
        columns.update(error_category="unreadable", error_message="cannot identify image file", processed_at=WHEN)
    return columns


def stored_rows(dtype: str = "float16") -> list[dict]:
    rng = np.random.default_rng(7)
    return [
        ok_columns(0, rng=rng, dtype=dtype),
        failed_columns(1),
        ok_columns(2, rng=rng, dtype=dtype),
        failed_columns(3, "pending"),
    ]


def result_items(include=("embedding", "probabilities"), dtype: str = "float16") -> list[dict]:
    numpy_dtype = results.check_embedding_dtype(dtype)
    return [results.item_from_columns(row, embedding_dtype=numpy_dtype, include=include) for row in stored_rows(dtype)]


def as_json(items: list[dict]) -> list[dict]:
    """What a client decodes from the API: times as ISO text ending in Z, everything else as is."""

    def default(value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    return json.loads(json.dumps(items, default=default))
