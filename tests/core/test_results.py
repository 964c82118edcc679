"""The result schema, pure: stored columns -> JSON item -> CSV row and Parquet table, all consistent."""

import io
import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagebatch.core import results

LABELS = ["tench", "goldfish", "shark"]
WHEN = datetime(2026, 3, 1, 12, 30, 45, 123456)  # naive, as SQLite hands it back


def _ok_columns(idx: int, *, rng: np.random.Generator, dtype: str = "float16") -> dict:
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


def _failed_columns(idx: int, status: str = "error") -> dict:
    columns = dict.fromkeys(results.STORED_COLUMNS)
    columns.update(idx=idx, source=f"bad{idx}.jpg", status=status)
    if status == "error":
        columns.update(error_category="unreadable", error_message="cannot identify image file", processed_at=WHEN)
    return columns


def _rows(dtype: str = "float16") -> list[dict]:
    rng = np.random.default_rng(7)
    return [
        _ok_columns(0, rng=rng, dtype=dtype),
        _failed_columns(1),
        _ok_columns(2, rng=rng, dtype=dtype),
        _failed_columns(3, "pending"),
    ]


def _items(include=("embedding", "probabilities"), dtype: str = "float16") -> list[dict]:
    numpy_dtype = results.check_embedding_dtype(dtype)
    return [results.item_from_columns(row, embedding_dtype=numpy_dtype, include=include) for row in _rows(dtype)]


def _as_json(items: list[dict]) -> list[dict]:
    """What a client decodes from the API: times as ISO text ending in Z, everything else as is."""

    def default(value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    return json.loads(json.dumps(items, default=default))


def test_stored_result_has_exactly_the_result_columns_and_round_trips():
    row = _rows("float32")[0]
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
    row = {name: value for name, value in _rows()[0].items() if name not in results.INCLUDABLE}
    item = results.item_from_columns(row)  # no embedding/probabilities columns needed (they stay deferred)
    assert "embedding" not in item and "probabilities" not in item
    assert results.item_columns() == tuple(c for c in results.STORED_COLUMNS if c not in results.INCLUDABLE)
    with_embedding = results.item_columns(["embedding"])
    assert "embedding" in with_embedding and "probabilities" not in with_embedding


def test_failed_and_pending_items_are_null_but_for_identity_and_error():
    failed, pending = _items()[1], _items()[3]
    assert failed["error"] == {"category": "unreadable", "message": "cannot identify image file"}
    assert pending["error"] is None and pending["processed_at"] is None
    for item in (failed, pending):
        assert item["channel_mean"] is None and item["top_k"] is None and item["embedding"] is None
        assert item["probabilities"] is None and item["confidence"] is None


def test_csv_header_and_rows_from_items():
    items = _items(include=("probabilities",))
    names = results.probability_columns(LABELS)
    header = results.csv_header(2, names)
    assert header[:19] == list(results.CSV_BASE_COLUMNS)
    assert header[19:25] == [
        "top1_label",
        "top1_index",
        "top1_probability",
        "top2_label",
        "top2_index",
        "top2_probability",
    ]
    assert header[25:] == ["p_tench", "p_goldfish", "p_shark"]
    ok, failed = (results.csv_row(item, 2, probability_count=3) for item in items[:2])
    assert len(ok) == len(failed) == len(header)
    cell = dict(zip(header, ok, strict=True))
    assert (cell["index"], cell["mean_g"], cell["std_b"]) == (0, 20.25, 3.5)
    assert cell["confidence"] == items[0]["confidence"] and cell["top1_label"] == items[0]["top_k"][0]["label"]
    assert [np.float32(float(cell[n])) for n in names] == [np.float32(p) for p in items[0]["probabilities"]]
    bad = dict(zip(header, failed, strict=True))
    assert (bad["error_category"], bad["status"]) == ("unreadable", "error")
    assert all(bad[c] is None for c in header[5:])
    assert results.probability_columns(["crane", "x", "crane"]) == ["p_crane_0", "p_x", "p_crane_2"]


FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r"]


def test_csv_text_cells_a_spreadsheet_would_run_are_neutralised_but_numbers_are_not():
    item = _items(include=("probabilities",))[0]
    item.update(
        source='=HYPERLINK("http://x","y").jpg',
        status="@SUM(1)",
        error={"category": "+1", "message": "\r=cmd"},
        mode="-2",
        format="\tTIFF",
        margin=-0.25,  # a negative number stays a number
        entropy=-0.0,
    )
    item["top_k"][0]["label"] = "=label"
    row = results.csv_row(item, 2, probability_count=3)
    cell = dict(zip(results.csv_header(2, results.probability_columns(LABELS)), row, strict=True))
    assert cell["source"] == '\'=HYPERLINK("http://x","y").jpg'
    assert (cell["status"], cell["error_category"], cell["error_message"]) == ("'@SUM(1)", "'+1", "'\r=cmd")
    assert (cell["mode"], cell["format"], cell["top1_label"]) == ("'-2", "'\tTIFF", "'=label")
    assert cell["margin"] == -0.25 and cell["entropy"] == -0.0 and cell["index"] == 0
    assert cell["top1_probability"] == item["top_k"][0]["probability"]
    assert all(not str(cell[f"p_{label}"]).startswith("'") for label in LABELS)
    for start in FORMULA_STARTS:
        assert results.csv_text(f"{start}x") == f"'{start}x"
    for safe in ("plain.jpg", "'already quoted", " =spaced", "", "é="):
        assert results.csv_text(safe) == safe


def test_parquet_schema_is_typed_with_fixed_size_vectors():
    schema = results.arrow_schema(embedding_size=8, probability_count=3)
    assert schema.field("index").type == pa.int32() and not schema.field("index").nullable
    assert schema.field("width").type == pa.int32() and schema.field("entropy").type == pa.float64()
    assert schema.field("channel_mean").type == pa.list_(pa.field("element", pa.float64()), 3)
    assert schema.field("top_k").type.value_type == results.TOP_K_ENTRY
    assert schema.field("processed_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("embedding").type == pa.list_(pa.field("element", pa.float32()), 8)
    assert schema.field("probabilities").type.list_size == 3
    assert "probabilities" not in results.arrow_schema(embedding_size=512).names
    assert results.arrow_schema(embedding_size=2048).field("embedding").type.list_size == 2048


def test_parquet_table_is_the_same_from_server_items_and_client_json():
    schema = results.arrow_schema(embedding_size=8, probability_count=3)
    server, client = _items(), _as_json(_items())
    assert isinstance(client[0]["processed_at"], str)
    table = results.arrow_table(server, schema)
    assert table.equals(results.arrow_table(client, schema)) and table.schema == schema
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "pending"]
    ok, failed = rows[0], rows[1]
    assert ok["embedding"] == [float(np.float32(v)) for v in server[0]["embedding"]]
    assert ok["top_k"] == server[0]["top_k"] and ok["channel_std"] == [1.0, 2.0, 3.5]
    assert ok["processed_at"] == WHEN.replace(tzinfo=UTC)
    assert (failed["error_category"], failed["error_message"]) == ("unreadable", "cannot identify image file")
    assert failed["embedding"] is None and failed["probabilities"] is None and failed["top_k"] is None
    assert "error" not in table.column_names


def test_parquet_rejects_an_embedding_of_the_wrong_size():
    with pytest.raises(pa.ArrowInvalid):
        results.arrow_table(_items(), results.arrow_schema(embedding_size=512, probability_count=3))


def test_parquet_chunks_write_a_row_group_per_page_that_reads_back_equal():
    schema = results.arrow_schema(embedding_size=8, probability_count=3)
    items = _items()
    chunks = list(results.parquet_chunks([items[:2], [], items[2:]], schema))
    assert len(chunks) == 3 and all(chunks)  # two row groups as they are written, then the footer
    data = b"".join(chunks)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 2
    back = pq.read_table(io.BytesIO(data))
    assert back.schema == schema and back.equals(results.arrow_table(items, schema))
    empty = pq.read_table(io.BytesIO(b"".join(results.parquet_chunks([[]], schema))))
    assert empty.num_rows == 0 and empty.schema == schema


def test_embedding_matrix_decodes_float16_rows_with_nan_gaps():
    items = _as_json(_items(include=("embedding",)))
    matrix = results.embedding_matrix(items, rows=5, size=8)
    assert matrix.dtype == np.float32 and matrix.shape == (5, 8)
    stored = np.frombuffer(_rows()[2]["embedding"], "<f2").astype(np.float32)
    assert np.array_equal(matrix[2], stored)
    assert np.isnan(matrix[[1, 3, 4]]).all()
