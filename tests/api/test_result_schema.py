"""The API's ResultItem model and the Parquet schema name exactly the fields of core.results' JSON item."""

from imagebatch.api.schemas import ResultItem
from imagebatch.core import result_files, results


def _item_keys() -> list[str]:
    row = dict.fromkeys(results.STORED_COLUMNS)
    return list(results.item_from_columns(row, include=results.INCLUDABLE))


def test_response_model_fields_are_the_item_fields_in_order():
    assert list(ResultItem.model_fields) == _item_keys()


def test_parquet_columns_are_the_item_fields_with_the_error_split():
    keys = _item_keys()
    at = keys.index("error")
    flat = keys[:at] + ["error_category", "error_message"] + keys[at + 1 :]
    assert result_files.arrow_schema(embedding_size=512, probability_count=1000).names == flat
