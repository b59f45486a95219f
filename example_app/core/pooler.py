"""asyncpg behind PgBouncer in transaction pooling mode (DP02): DB_BEHIND_POOLER=true.

asyncpg prepares every statement (a named, server-side prepared statement) and keeps it per
connection. Behind a pooler in transaction mode, the "connection" is a different server
connection from one transaction to the next: a statement prepared on one is missing on the other
("prepared statement ... does not exist"), and two clients' `__asyncpg_stmt_1__` collide on one
("... already exists"). PgBouncer 1.21+ can track prepared statements itself
(`max_prepared_statements`); Debian 12's PgBouncer is 1.18, which cannot. So the client side
does it: no statement kept between transactions, and a name no other client can have.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry


def unique_statement_name() -> str:
    return f"__asyncpg_{uuid4()}__"


POOLER_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,  # asyncpg's own cache of prepared statements: off
    "prepared_statement_cache_size": 0,  # SQLAlchemy's asyncpg adapter's cache: off
    "prepared_statement_name_func": unique_statement_name,  # no two clients share a name
}


def behind_pooler(engine: AsyncEngine) -> None:
    """Every new connection of `engine` gets POOLER_CONNECT_ARGS, over any connect_args."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _pooler_args(
        dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: dict[str, Any]
    ) -> None:
        cparams.update(POOLER_CONNECT_ARGS)
