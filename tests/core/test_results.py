"""The result schema, pure: stored columns as the worker writes them -> the JSON item, heavy vectors on request."""

from datetime import UTC

import numpy as np
import pytest

from imagebatch.core import results
from tests.core.result_rows import WHEN, result_items, stored_rows


def test_stored_result_has_exactly_the_result_columns_and_round_trips():
    row = stored_rows("float32")[0]
    assert set(row) == set(results.STORED_COLUMNS)
    assert (row["top1_index"], row["top1_label"]) == (row["topk"][0]["index"], row["topk"][0]["label"])
    item = results.item_from_columns(row, embedding_dtype="<f4", include=("embedding", "probabilities"))
    assert item["embedding"] == np.frombuffer(row["embedding"], "<f4").astype(np.float64).tolist()
    assert item["probabilities"] == np.frombuffer(row["probabilities"], "<f4").astype(np.float64).tolist()
    assert item["channel_mean"] == [10.5, 20.25, 30.0] and item["channel_std"] == [1.0, 2.0, 3.5]
    assert item["processed_at"] == WHEN.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="float32 or float16"):
        results.check_embedding_dtype("float64")


def test_items_leave_heavy_vectors_out_unless_included_and_never_read_them():
    row = {name: value for name, value in stored_rows()[0].items() if name not in results.INCLUDABLE}
    item = results.item_from_columns(row)  # no embedding/probabilities columns needed (they stay deferred)
    assert "embedding" not in item and "probabilities" not in item
    assert results.item_columns() == tuple(c for c in results.STORED_COLUMNS if c not in results.INCLUDABLE)
    with_embedding = results.item_columns(["embedding"])
    assert "embedding" in with_embedding and "probabilities" not in with_embedding


def test_failed_and_pending_items_are_null_but_for_identity_and_error():
    failed, pending = result_items()[1], result_items()[3]
    assert failed["error"] == {"category": "unreadable", "message": "cannot identify image file"}
    assert pending["error"] is None and pending["processed_at"] is None
    for item in (failed, pending):
        assert item["channel_mean"] is None and item["top_k"] is None and item["embedding"] is None
        assert item["probabilities"] is None and item["confidence"] is None
