"""The job queue: one procrastinate App on the app's own PostgreSQL.

Workers talk to the queue through procrastinate's psycopg connector (its pool, LISTEN/NOTIFY).
The web app only ever defers jobs, and does so inside its own SQLAlchemy transaction (see
`SessionConnector`): it opens no psycopg connection at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

from procrastinate import App, PsycopgConnector
from procrastinate.types import JobToDefer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from example_app.core.config import Settings

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


# --8<-- [start:session_connector]
class SessionConnector(PsycopgConnector):
    """procrastinate's psycopg connector that can also defer through the app's session.

    `task.configure(connection=...).defer_async(...)` is procrastinate's way to write the job
    row inside the caller's transaction; its connectors take a psycopg connection there. The
    app's sessions run on asyncpg, so for an `AsyncSession` the very same query (procrastinate's
    own `defer_jobs`, which calls its SQL function) runs through the session instead: the job
    commits with the post, or rolls back with it.
    """

    async def execute_query_all_async_with_connection(
        self, connection: Any, query: Any, **arguments: Any
    ) -> list[dict[str, Any]]:
        if not isinstance(connection, AsyncSession | AsyncConnection):  # psycopg's: procrastinate's way
            rows: list[dict[str, Any]] = await super().execute_query_all_async_with_connection(
                connection, query, **arguments
            )
            return rows
        # psycopg's %(name)s -> SQLAlchemy's :name (a space keeps a following ::cast apart)
        statement = text(_PLACEHOLDER.sub(r":\1 ", query))
        if isinstance(connection, AsyncSession):
            connection = await connection.connection()  # the session's, in its transaction
        result = await connection.execute(statement, {k: _for_asyncpg(v) for k, v in arguments.items()})
        return [dict(row) for row in result.mappings()]

    async def execute_query_one_async_with_connection(
        self, connection: Any, query: Any, **arguments: Any
    ) -> dict[str, Any]:
        if not isinstance(connection, AsyncSession | AsyncConnection):
            found: dict[str, Any] = await super().execute_query_one_async_with_connection(
                connection, query, **arguments
            )
            return found
        (row,) = await self.execute_query_all_async_with_connection(connection, query, **arguments)
        return row


def _for_asyncpg(value: Any) -> Any:
    # The jobs to defer are rows of a composite type; asyncpg encodes tuples as such, with the
    # jsonb field as text (psycopg's connector wraps it in Jsonb instead).
    if isinstance(value, list) and all(isinstance(job, JobToDefer) for job in value):
        return [tuple(job._replace(args=json.dumps(job.args))) for job in value]
    return value


# --8<-- [end:session_connector]


def conninfo(database_url: str) -> str:
    """The libpq URL of the app's database (DATABASE_URL without SQLAlchemy's +asyncpg)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


# --8<-- [start:app]
# The tasks' registry. The web app defers through its own session (no pool of its own): this
# connector never connects there. A worker gives it a pool of its own (worker_connector).
queue = App(
    connector=SessionConnector(),
    import_paths=["example_app.jobs.tasks"],  # what a worker imports to know the tasks
)


def worker_connector(settings: Settings) -> SessionConnector:
    """A worker's connection to the queue: a psycopg pool on the app's database."""
    return SessionConnector(
        conninfo=conninfo(settings.DATABASE_URL),
        min_size=1,
        max_size=settings.JOB_QUEUE_POOL_SIZE,  # counted in the connection budget
    )


# --8<-- [end:app]
