"""The Alembic migrations build exactly the schema db/models.py declares, on SQLite and PostgreSQL."""

import subprocess
import sys

from tests.harness.services import clean_env, scratch_database

_CHECK = """
from alembic import command
from alembic.script import ScriptDirectory
from imagebatch.db.migrate import alembic_config, upgrade_to_head
upgrade_to_head()
command.check(alembic_config())  # raises if models and migrated schema differ
heads = ScriptDirectory.from_config(alembic_config()).get_heads()
assert len(heads) == 1, f"migrations have several heads: {heads}"
"""


def _check(env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-c", _CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_migrations_match_models_on_sqlite(tmp_path):
    _check(clean_env(IMAGEBATCH_DATA_DIR=str(tmp_path)))


def test_migrations_match_models_on_postgres(tmp_path):
    with scratch_database("imagebatch_migrations_test") as url:
        _check(clean_env(IMAGEBATCH_DATA_DIR=str(tmp_path), DATABASE_URL=url))
