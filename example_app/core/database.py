"""The one async engine and session factory of the app."""

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import Settings, get_settings


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_pre_ping=True,  # a connection killed server-side is replaced, not handed out
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        echo=settings.DB_ECHO,
        hide_parameters=True,  # logs and error messages never carry bound values (hashes)
    )


engine = create_engine(get_settings())

# expire_on_commit=False: attributes stay loaded after commit, so a response can be built
# without another (implicit, and under asyncio forbidden) round trip.
SessionLocal = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
