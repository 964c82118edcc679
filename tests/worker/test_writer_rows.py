"""The writer's rows carry exactly the result schema's columns, for a processed and for a failed image."""

from datetime import UTC, datetime

import numpy as np

from imagebatch.core import results
from imagebatch.db.models import Image
from imagebatch.worker import writer
from imagebatch.worker.inference import ImageResult
from imagebatch.worker.reader import DecodedImage

NOW = datetime(2026, 1, 2, tzinfo=UTC)
# "renditions": where the worker put the thumbnail (the API serves it; not a result column).
ROW_KEYS = {"id", "renditions", *results.OUTCOME_COLUMNS, *results.RESULT_COLUMNS}


def _ok_row(dtype: str) -> dict:
    decoded = DecodedImage(
        width=4, height=3, mode="RGB", format="PNG", mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), tensor=None
    )
    topk = [{"index": 7, "label": "cock", "probability": 0.75}, {"index": 1, "label": "goldfish", "probability": 0.2}]
    embedding = np.linspace(-1, 1, 512, dtype=np.float32)
    result = ImageResult(
        topk=topk,
        confidence=0.75,
        top5_mean=0.19,
        margin=0.55,
        entropy=0.8,
        embedding=embedding,
        probabilities=np.full(1000, 0.001, dtype=np.float32),
    )
    return writer.ok_row(11, decoded, result, dtype, NOW)


def test_ok_and_error_rows_have_the_same_schema_columns():
    ok = _ok_row("float32")
    failed = writer.error_row(12, "unreadable", "x" * 3000, NOW)
    assert set(ok) == set(failed) == ROW_KEYS
    assert ROW_KEYS - {"id"} <= set(Image.__table__.columns.keys())
    assert (ok["top1_index"], ok["top1_label"], ok["mean_b"], ok["std_r"]) == (7, "cock", 3.0, 4.0)
    assert all(failed[name] is None for name in results.RESULT_COLUMNS) and len(failed["error_message"]) == 2000


def test_ok_row_stores_vectors_in_the_dtype_the_schema_decodes():
    for dtype, size in (("float32", 4), ("float16", 2)):
        row = _ok_row(dtype)
        assert len(row["embedding"]) == 512 * size and len(row["probabilities"]) == 1000 * 4
        item = results.item_from_columns(
            {"idx": 0, "source": "a.png", **row},
            embedding_dtype=results.EMBEDDING_DTYPES[dtype],
            include=results.INCLUDABLE,
        )
        np.testing.assert_allclose(item["embedding"], np.linspace(-1, 1, 512), atol=1e-3)
        assert item["top_k"][0]["label"] == "cock" and item["probabilities"][0] == np.float32(0.001)
