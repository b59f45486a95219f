"""The connection budget (DP01): what every process of the deployment may open, against the
connections PostgreSQL accepts. Checked at start-up, in the lifespan of every app process.

Every app process holds up to DB_POOL_SIZE + DB_MAX_OVERFLOW connections; a job worker holds its
queue's pool and the same engine pool (its jobs use the app's sessions). When the total can go
past the server's limit, the first connection too many fails at the worst time (under load, with
`too many clients already`); at start-up, the arithmetic is a comparison.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from example_app.core.config import Settings

logger = logging.getLogger(__name__)

# What the server keeps for superusers (and, from PostgreSQL 16, for roles with
# pg_use_reserved_connections) is not the app's to use.
SERVER_LIMITS = text(
    "SELECT current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int,"
    " coalesce(current_setting('reserved_connections', true), '0')::int"
)


class ConnectionBudgetError(RuntimeError):
    """The deployment may open more connections than the server accepts."""


# --8<-- [start:budget]
@dataclass(frozen=True)
class ConnectionBudget:
    settings: Settings

    @property
    def per_process(self) -> int:
        return self.settings.DB_POOL_SIZE + self.settings.DB_MAX_OVERFLOW

    @property
    def listener(self) -> int:  # each app process's LISTEN connection for model aliases (LC02)
        return 0 if self.settings.DB_BEHIND_POOLER else 1

    @property
    def web(self) -> int:  # every uvicorn worker of every instance
        return (
            self.settings.APP_INSTANCES * self.settings.WEB_CONCURRENCY * (self.per_process + self.listener)
        )

    @property
    def jobs(self) -> int:  # every job worker: its queue's pool and its engine's
        return self.settings.JOB_WORKERS * (self.settings.JOB_QUEUE_POOL_SIZE + self.per_process)

    @property
    def needed(self) -> int:
        return self.web + self.jobs + self.settings.DB_RESERVED_CONNECTIONS

    def check(self, max_connections: int, reserved: int) -> None:
        available = max_connections - reserved
        if self.needed <= available:
            return
        s = self.settings
        listener = f" + {self.listener} listener" if self.listener else ""
        raise ConnectionBudgetError(
            f"connection budget exceeded: {s.APP_INSTANCES} instance(s) x {s.WEB_CONCURRENCY} "
            f"worker(s) x ({s.DB_POOL_SIZE} pool + {s.DB_MAX_OVERFLOW} overflow{listener}) = {self.web}, "
            f"+ {s.JOB_WORKERS} job worker(s) x ({s.JOB_QUEUE_POOL_SIZE} queue + {self.per_process}) = "
            f"{self.jobs}, + {s.DB_RESERVED_CONNECTIONS} reserve = {self.needed} > {available} "
            f"(max_connections {max_connections} - {reserved} reserved for superusers); lower "
            "WEB_CONCURRENCY, DB_POOL_SIZE, DB_MAX_OVERFLOW or JOB_WORKERS, or raise max_connections "
            "on the server"
        )


async def check_connection_budget(connection: AsyncConnection, settings: Settings) -> ConnectionBudget:
    """Read the server's limits and compare; ConnectionBudgetError says what to change."""
    max_connections, superuser_reserved, reserved = (await connection.execute(SERVER_LIMITS)).one()
    budget = ConnectionBudget(settings)
    budget.check(max_connections, superuser_reserved + reserved)
    return budget


async def enforce_connection_budget(engine: AsyncEngine, settings: Settings) -> None:
    """In the lifespan: an over-budget deployment does not start, and its log says why in one line."""
    if settings.DB_BEHIND_POOLER:  # the app's pools hold PgBouncer's client slots, not the server's
        return
    try:
        async with engine.connect() as connection:
            await check_connection_budget(connection, settings)
    except ConnectionBudgetError:
        # The process stops here; uvicorn logs the start-up error's traceback, which without
        # frames is the one line "ConnectionBudgetError: connection budget exceeded: ...".
        sys.tracebacklimit = 0
        raise
    except (OSError, DBAPIError, TimeoutError) as exc:  # the database is down: /health/ready says so
        logger.warning("connection budget not checked: %s", str(exc).splitlines()[0])


# --8<-- [end:budget]
