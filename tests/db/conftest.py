"""Fixtures for the db tests: a real SQLite file and a real PostgreSQL database with the schema."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from imagebatch.db.models import Artefact, Base, Image, Job, LabelSet, RegisteredModel, TrainingJob, WorkerProcess
from imagebatch.db.session import make_engine
from tests.harness.services import scratch_database

PG_DB = "imagebatch_db_test"
# Emptied before each test, children first.
TABLES = (Artefact, Image, LabelSet, Job, TrainingJob, RegisteredModel, WorkerProcess)


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """One scratch PostgreSQL database for the whole run; tables emptied before each test."""
    with scratch_database(PG_DB) as url:
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The same schema on both databases the service runs on (engines as db.session makes them)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'lifecycle.sqlite'}")
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    engine = request.getfixturevalue("pg_engine")
    with Session(engine) as session, session.begin():
        for table in TABLES:
            session.execute(delete(table))
    yield engine


@pytest.fixture
def pg(pg_engine: Engine) -> Engine:
    """PostgreSQL only, emptied: for the tests where sessions race on row locks."""
    with Session(pg_engine) as session, session.begin():
        for table in TABLES:
            session.execute(delete(table))
    return pg_engine


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the parametrised database; `with db.begin() as session:` is one transaction."""
    return sessionmaker(bind=engine, expire_on_commit=False)
