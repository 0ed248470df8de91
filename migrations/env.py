"""Alembic environment: migrates the engine handed over in ``config.attributes`` (or the settings' URL)."""

from __future__ import annotations

from alembic import context

from db.models import Base

config = context.config


def _engine():  # type: ignore[no-untyped-def]
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    from annotator.settings import Settings
    from db.session import make_engine

    return make_engine(Settings.from_env().database_url)


def run_migrations_online() -> None:
    """Run every pending revision in one transaction; SQLite alters tables in batch mode."""
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
