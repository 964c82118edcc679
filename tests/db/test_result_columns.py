"""The ORM's image table holds every column of the result schema, so model, writer and schema cannot drift."""

from sqlalchemy import JSON, LargeBinary

from imagebatch.core import results
from imagebatch.db.models import Image


def test_image_table_has_every_stored_result_column():
    columns = Image.__table__.columns
    missing = [name for name in results.STORED_COLUMNS if name not in columns]
    assert not missing, f"core.results stores columns the Image model lacks: {missing}"
    assert len(set(results.STORED_COLUMNS)) == len(results.STORED_COLUMNS)
    # The schema decodes these as raw little-endian vectors and a list of dicts.
    assert isinstance(columns["embedding"].type, LargeBinary) and isinstance(columns["probabilities"].type, LargeBinary)
    assert isinstance(columns["topk"].type, JSON)
    assert all(columns[name].nullable for name in results.RESULT_COLUMNS), "a failed image stores none of them"
