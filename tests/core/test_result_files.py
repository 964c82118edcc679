"""Results as files, pure: JSON items -> CSV rows and the Parquet table, all consistent with the item."""

import io
from datetime import UTC

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagebatch.core import result_files
from tests.core.result_rows import LABELS, WHEN, as_json, result_items, stored_rows


def test_csv_header_and_rows_from_items():
    items = result_items(include=("probabilities",))
    names = result_files.probability_columns(LABELS)
    header = result_files.csv_header(2, names)
    assert header[:19] == list(result_files.CSV_BASE_COLUMNS)
    assert header[19:25] == [
        "top1_label",
        "top1_index",
        "top1_probability",
        "top2_label",
        "top2_index",
        "top2_probability",
    ]
    assert header[25:] == ["p_tench", "p_goldfish", "p_shark"]
    ok, failed = (result_files.csv_row(item, 2, probability_count=3) for item in items[:2])
    assert len(ok) == len(failed) == len(header)
    cell = dict(zip(header, ok, strict=True))
    assert (cell["index"], cell["mean_g"], cell["std_b"]) == (0, 20.25, 3.5)
    assert cell["confidence"] == items[0]["confidence"] and cell["top1_label"] == items[0]["top_k"][0]["label"]
    assert [np.float32(float(cell[n])) for n in names] == [np.float32(p) for p in items[0]["probabilities"]]
    bad = dict(zip(header, failed, strict=True))
    assert (bad["error_category"], bad["status"]) == ("unreadable", "error")
    assert all(bad[c] is None for c in header[5:])
    assert result_files.probability_columns(["crane", "x", "crane"]) == ["p_crane_0", "p_x", "p_crane_2"]


FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r"]


def test_csv_text_cells_a_spreadsheet_would_run_are_neutralised_but_numbers_are_not():
    item = result_items(include=("probabilities",))[0]
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
    row = result_files.csv_row(item, 2, probability_count=3)
    cell = dict(zip(result_files.csv_header(2, result_files.probability_columns(LABELS)), row, strict=True))
    assert cell["source"] == '\'=HYPERLINK("http://x","y").jpg'
    assert (cell["status"], cell["error_category"], cell["error_message"]) == ("'@SUM(1)", "'+1", "'\r=cmd")
    assert (cell["mode"], cell["format"], cell["top1_label"]) == ("'-2", "'\tTIFF", "'=label")
    assert cell["margin"] == -0.25 and cell["entropy"] == -0.0 and cell["index"] == 0
    assert cell["top1_probability"] == item["top_k"][0]["probability"]
    assert all(not str(cell[f"p_{label}"]).startswith("'") for label in LABELS)
    for start in FORMULA_STARTS:
        assert result_files.csv_text(f"{start}x") == f"'{start}x"
    for safe in ("plain.jpg", "'already quoted", " =spaced", "", "é="):
        assert result_files.csv_text(safe) == safe


def test_parquet_schema_is_typed_with_fixed_size_vectors():
    schema = result_files.arrow_schema(embedding_size=8, probability_count=3)
    assert schema.field("index").type == pa.int32() and not schema.field("index").nullable
    assert schema.field("width").type == pa.int32() and schema.field("entropy").type == pa.float64()
    assert schema.field("channel_mean").type == pa.list_(pa.field("element", pa.float64()), 3)
    assert schema.field("top_k").type.value_type == result_files.TOP_K_ENTRY
    assert schema.field("processed_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("embedding").type == pa.list_(pa.field("element", pa.float32()), 8)
    assert schema.field("probabilities").type.list_size == 3
    assert "probabilities" not in result_files.arrow_schema(embedding_size=512).names
    assert result_files.arrow_schema(embedding_size=2048).field("embedding").type.list_size == 2048


def test_parquet_table_is_the_same_from_server_items_and_client_json():
    schema = result_files.arrow_schema(embedding_size=8, probability_count=3)
    server, client = result_items(), as_json(result_items())
    assert isinstance(client[0]["processed_at"], str)
    table = result_files.arrow_table(server, schema)
    assert table.equals(result_files.arrow_table(client, schema)) and table.schema == schema
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
        result_files.arrow_table(result_items(), result_files.arrow_schema(embedding_size=512, probability_count=3))


def test_parquet_chunks_write_a_row_group_per_page_that_reads_back_equal():
    schema = result_files.arrow_schema(embedding_size=8, probability_count=3)
    items = result_items()
    chunks = list(result_files.parquet_chunks([items[:2], [], items[2:]], schema))
    assert len(chunks) == 3 and all(chunks)  # two row groups as they are written, then the footer
    data = b"".join(chunks)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 2
    back = pq.read_table(io.BytesIO(data))
    assert back.schema == schema and back.equals(result_files.arrow_table(items, schema))
    empty = pq.read_table(io.BytesIO(b"".join(result_files.parquet_chunks([[]], schema))))
    assert empty.num_rows == 0 and empty.schema == schema


def test_embedding_matrix_decodes_float16_rows_with_nan_gaps():
    items = as_json(result_items(include=("embedding",)))
    matrix = result_files.embedding_matrix(items, rows=5, size=8)
    assert matrix.dtype == np.float32 and matrix.shape == (5, 8)
    stored = np.frombuffer(stored_rows()[2]["embedding"], "<f2").astype(np.float32)
    assert np.array_equal(matrix[2], stored)
    assert np.isnan(matrix[[1, 3, 4]]).all()
