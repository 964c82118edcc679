"""Real PostgreSQL and Redis for tests: admin URL, scratch databases, private Redis databases."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

from imagebatch.cli.demo import free_port  # noqa: F401  (tests take a free port from here too)

# scripts/test.sh exports this (with a password where the server does not trust TCP logins).
ADMIN_PG_URL = os.environ.get("IMAGEBATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("IMAGEBATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def libpq_url(sqlalchemy_url: str) -> str:
    """The same URL in the form psycopg.connect() takes."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


# Checkouts testing side by side on one server keep apart by a suffix on every scratch database.
DB_SUFFIX = os.environ.get("IMAGEBATCH_TEST_DB_SUFFIX", "")


def database_url(name: str) -> str:
    """SQLAlchemy URL of database `name` (plus this run's suffix) on the test server."""
    return ADMIN_PG_URL.rsplit("/", 1)[0] + f"/{name}{DB_SUFFIX}"


def _recreate(name: str, create: bool) -> None:
    name += DB_SUFFIX
    with psycopg.connect(libpq_url(ADMIN_PG_URL), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if create:
            admin.execute(f"CREATE DATABASE {name}")


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A freshly created PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    _recreate(name, create=True)
    try:
        yield database_url(name)
    finally:
        _recreate(name, create=False)


@contextmanager
def private_redis(db: int) -> Iterator[str]:
    """A Redis database number owned by one test area, flushed before and after."""
    url = f"{REDIS_BASE_URL}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without imagebatch settings, plus test defaults and `overrides`.

    Test defaults: auth off and loopback URLs allowed (tests serve images from 127.0.0.1);
    tests/security turns both back on through `overrides`.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("IMAGEBATCH_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(IMAGEBATCH_AUTH_ENABLED="false", IMAGEBATCH_ALLOW_PRIVATE_URLS="true")
    env.update(overrides)
    return env
