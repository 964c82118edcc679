"""Apply Alembic migrations programmatically (`imagebatch migrate`, API start-up)."""

from pathlib import Path

from alembic import command
from alembic.config import Config

_INI = Path(__file__).with_name("alembic.ini")


def alembic_config() -> Config:
    return Config(str(_INI))


def upgrade_to_head() -> None:
    command.upgrade(alembic_config(), "heads")
