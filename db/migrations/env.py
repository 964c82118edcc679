"""Alembic environment: the URL comes from imagebatch settings, the metadata from db.models."""

from alembic import context

from imagebatch.db.models import Base
from imagebatch.db.session import get_engine


def run_migrations() -> None:
    with get_engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
