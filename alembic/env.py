"""Alembic environment: the app's settings give the URL, the app's models give the target."""

import asyncio
from logging.config import fileConfig

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

import example_app.models  # noqa: F401  (registers every table on SQLModel.metadata)
from alembic import context

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# --8<-- [start:target]
target_metadata = SQLModel.metadata


def database_url() -> str:
    # Tests and tools may hand in a URL; everyone else uses the app's own settings.
    if url := config.attributes.get("database_url"):
        return str(url)
    from example_app.core.config import get_settings

    return get_settings().DATABASE_URL


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # The job queue's tables are procrastinate's (its schema, applied by a revision), not models:
    # autogenerate must not offer to drop them.
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,  # column type changes are migrations too
        compare_server_default=True,
        include_name=include_name,
        **kwargs,  # type: ignore[arg-type]
    )


# --8<-- [end:target]


def run_migrations_offline() -> None:
    """`--sql` mode: print the SQL instead of running it."""
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


# --8<-- [start:online]
# One runner at a time (DP03): instances that start together queue on this PostgreSQL advisory
# lock; the first applies the revisions, each next one finds the database at head. Any bigint
# the app's own locks do not use.
MIGRATION_LOCK = 74_102_016


async def wait_for_migration_lock(connection: AsyncConnection) -> None:
    # pg_try_advisory_lock, again and again, never a blocking pg_advisory_lock: a session waiting
    # inside a statement holds a snapshot, and CREATE INDEX CONCURRENTLY in the runner's revisions
    # waits for every older snapshot to end: the runner and the waiters would deadlock.
    try_lock = text("SELECT pg_try_advisory_lock(:key)")
    while not (await connection.execute(try_lock, {"key": MIGRATION_LOCK})).scalar():
        await connection.commit()  # no transaction, no snapshot, while this instance waits
        await asyncio.sleep(0.2)
    await connection.commit()  # a session lock: it outlives the transaction, not the connection


async def run_async_migrations() -> None:
    engine = create_async_engine(database_url(), poolclass=NullPool)
    try:
        connection = await engine.connect()
    except (OSError, DBAPIError) as exc:  # server down, wrong port, missing database, bad password
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        raise SystemExit(f"alembic: cannot connect to {where}: {reason}") from None
    try:
        await wait_for_migration_lock(connection)
        await connection.run_sync(do_run_migrations)  # reads the current revision once it holds it
    finally:
        await connection.close()  # ends the session, which releases the lock
        await engine.dispose()


def run_migrations_online() -> None:
    # A caller may pass its own connection (a test), or engine (pytest-alembic does).
    connectable = config.attributes.get("connection")
    if connectable is None:
        asyncio.run(run_async_migrations())
    elif isinstance(connectable, Engine):
        with connectable.connect() as connection:
            do_run_migrations(connection)
    else:
        do_run_migrations(connectable)


# --8<-- [end:online]


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
