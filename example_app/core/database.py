"""The one async engine and session factory of the app."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import Settings, get_settings
from example_app.core.pooler import behind_pooler


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
    return create_async_engine(
        settings.database_url,
        pool_pre_ping=True,  # a connection killed server-side is replaced, not handed out
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        connect_args=connect_args(settings),
        echo=settings.DB_ECHO,
        hide_parameters=True,  # logs and error messages never carry bound values (hashes)
    )


engine = create_engine(get_settings())
if get_settings().DB_BEHIND_POOLER:
    behind_pooler(engine)  # PgBouncer in transaction mode: see core/pooler.py

# expire_on_commit=False: attributes stay loaded after commit, so a response can be built
# without another (implicit, and under asyncio forbidden) round trip.
SessionLocal = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
# --8<-- [end:engine]
