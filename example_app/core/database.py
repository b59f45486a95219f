"""The app's async engine and session factory, made from its settings (by the lifespan)."""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExecutionContext
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, NullPool, PoolProxiedConnection
from sqlalchemy.util import immutabledict
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import Settings
from example_app.core.pooler import behind_pooler

INT4_MAX = 2**31 - 1  # the largest PostgreSQL `integer`, the type of the tables' ids


# --8<-- [start:timeouts]
def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's arguments for every new connection: each wait on the database is bounded."""
    return {
        "timeout": settings.DB_CONNECT_TIMEOUT,  # opening a connection (asyncpg's default: 60 s)
        "command_timeout": settings.DB_COMMAND_TIMEOUT,  # any one statement, on the client's clock
        "server_settings": {
            # PostgreSQL itself cancels a longer statement (SQLSTATE 57014), and frees its locks
            "statement_timeout": f"{settings.DB_STATEMENT_TIMEOUT * 1000:.0f}",
            "application_name": settings.DB_APPLICATION_NAME,  # names the app in pg_stat_activity
        },
    }


# --8<-- [end:timeouts]


# --8<-- [start:engine]
def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        # No pool_pre_ping: it sends BEGIN, a ping and ROLLBACK at every checkout. A connection
        # the server has closed is found without a round trip instead (discard_closed, below).
        pool_recycle=settings.DB_POOL_RECYCLE,
        poolclass=FairPool,  # first come, first served when every connection is in use
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        connect_args={
            **connect_args(settings),
            "prepared_statement_cache_size": settings.DB_STATEMENT_CACHE_SIZE,
        },
        echo=settings.DB_ECHO,
        hide_parameters=True,  # logs and error messages never carry bound values (hashes)
    )
    event.listen(engine.sync_engine, "checkout", discard_closed)
    event.listen(engine.sync_engine, "before_cursor_execute", refuse_writes_without_transaction)
    if settings.DB_BEHIND_POOLER:
        behind_pooler(engine)  # PgBouncer in transaction mode: see core/pooler.py
    return engine


def discard_closed(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
    """Liveness at no cost: a pooled connection the server has closed is never handed out.

    When PostgreSQL ends a connection (a restart, pg_terminate_backend, idle_session_timeout),
    the end of its socket reaches the event loop and asyncpg marks the connection closed while it
    waits in the pool. Raising here makes the pool drop it and check out another, or open one.
    """
    if record.driver_connection is None or record.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


# --8<-- [end:engine]


# --8<-- [start:monitoring_engine]
def create_monitoring_engine(settings: Settings) -> AsyncEngine:
    """An engine without a pool, for the reads a scrape makes (the job queue, api/metrics.py).

    A scrape never waits for one of the requests' connections, nor shows in their pool's
    metrics, and it reads even when that pool is full. Its one connection lives for the
    scrape's read alone, out of DB_RESERVED_CONNECTIONS (kept for monitoring, among others).
    """
    engine = create_async_engine(
        settings.database_url,
        poolclass=NullPool,
        connect_args=connect_args(settings),  # the same bounded waits, statement timeout, name
        execution_options=read_options(settings),  # a read: no transaction where allowed
        hide_parameters=True,
    )
    if settings.DB_BEHIND_POOLER:
        behind_pooler(engine)
    return engine


# --8<-- [end:monitoring_engine]


# --8<-- [start:fair_pool]
class FairQueue(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """The pool's free connections, handed out in the order requests asked for them.

    SQLAlchemy's queue lets a request that arrives when a connection comes back take it, ahead
    of those already waiting; a waiter that loses the race queues again at the end. Under a
    load above the pool's size, some requests then wait until DB_POOL_TIMEOUT while others
    pass. Here a returned connection goes straight to the longest waiter.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[ConnectionPoolEntry]] = deque()
        self.on_wait: Callable[[float], object] | None = None  # seconds, after each wait

    def _waiting(self) -> bool:
        while self._waiters and self._waiters[0].done():  # timed out or cancelled meanwhile
            self._waiters.popleft()
        return bool(self._waiters)

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        if self._waiting():
            self._waiters.popleft().set_result(item)
        else:
            super().put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        if not self._waiting():
            try:
                return self.get_nowait()
            except Empty:
                if not block:
                    raise
        elif not block:
            raise Empty()  # others wait already: the pool may open an overflow connection
        # --8<-- [start:pool_waits]
        waiter: asyncio.Future[ConnectionPoolEntry] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        started = time.perf_counter()
        try:
            return await_(asyncio.wait_for(waiter, timeout))
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():  # handed over as the wait ended
                self.put_nowait(waiter.result())
            waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise Empty() from None
            raise
        finally:
            if self.on_wait is not None:  # the metrics' db_pool_wait_seconds
                self.on_wait(time.perf_counter() - started)
        # --8<-- [end:pool_waits]


class FairPool(AsyncAdaptedQueuePool):
    _queue_class = FairQueue

    def on_wait(self, observe: Callable[[float], object]) -> None:
        """Call `observe(seconds)` after each checkout that had to wait (the metrics' pool waits)."""
        assert isinstance(self._pool, FairQueue)
        self._pool.on_wait = observe


# --8<-- [end:fair_pool]


# --8<-- [start:no_writes]
class WriteWithoutTransactionError(RuntimeError):
    """A GET request's session (no transaction, see get_db) was asked to write."""


def refuse_writes_without_transaction(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: ExecutionContext | None,
    many: bool,
) -> None:
    # Without a transaction, each statement would commit on its own: a write of two statements
    # could stop halfway. A GET does not write; if one ever does, it fails here, loudly.
    writes = isinstance(context, DefaultExecutionContext) and context.is_crud  # INSERT, UPDATE, DELETE
    if writes and conn.get_execution_options().get("isolation_level") == AUTOCOMMIT:
        raise WriteWithoutTransactionError(f"a write in a session without a transaction: {statement[:60]!r}")


# --8<-- [end:no_writes]


# --8<-- [start:session_factory]
def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: attributes stay loaded after commit, so a response can be built
    # without another (implicit, and under asyncio forbidden) round trip.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# --8<-- [end:session_factory]


# --8<-- [start:reads]
AUTOCOMMIT = "AUTOCOMMIT"
# The options of a session that only reads (get_db, for a GET): its connection runs each
# statement on its own, with no BEGIN before and no ROLLBACK after.
WITHOUT_TRANSACTION = {"isolation_level": AUTOCOMMIT}


def read_options(settings: Settings) -> dict[str, str]:
    """The session options of a GET. Behind PgBouncer in transaction mode a statement outside a
    transaction may have its prepare and its execute served by two different server connections
    ("prepared statement ... does not exist", found by the scale-out bench): there, reads keep
    their transaction."""
    return {} if settings.DB_BEHIND_POOLER else WITHOUT_TRANSACTION


async def begin_transaction(session: AsyncSession) -> None:
    """The session's next statements run in a transaction, in a GET's session too.

    A server-side cursor lives in a transaction. The session's reads so far end here (their
    connection goes back to the pool), and its next statement begins a transaction.
    """
    if session.sync_session.execution_options.get("isolation_level") == AUTOCOMMIT:
        await session.commit()
        session.sync_session.execution_options = immutabledict()


# --8<-- [end:reads]
