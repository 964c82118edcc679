"""Real PostgreSQL and Redis for tests: now in imagebatch.testing.services (scripts/faults.py uses them too)."""

from imagebatch.demo import free_port
from imagebatch.testing.services import (
    ADMIN_PG_URL,
    REDIS_BASE_URL,
    clean_env,
    database_url,
    libpq_url,
    private_redis,
    scratch_database,
)

__all__ = ["ADMIN_PG_URL", "REDIS_BASE_URL", "clean_env", "database_url", "free_port", "libpq_url",
           "private_redis", "scratch_database"]
