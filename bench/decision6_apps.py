"""The four ways to serve "fetch a user by primary key" that Decision 6 compares.

Run by uvicorn with BENCH_VARIANT set; the database URL comes from DATABASE_URL (asyncpg form).
`?sleep=0.02` adds a 20 ms server-side wait to the query, like a slower query would.
"""

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

VARIANT = os.environ.get("BENCH_VARIANT", "async-asyncsession")
URL = make_url(os.environ["DATABASE_URL"])
POOL = {"pool_size": 20, "max_overflow": 20}  # 40 connections: as many as the threadpool has threads
QUERY = "SELECT id, email, name FROM users WHERE id = :id AND pg_sleep(:sleep) IS NOT NULL"


def _row(row: Any) -> dict[str, Any]:
    if row is None:
        raise HTTPException(404, "not found")
    return {"id": row[0], "email": row[1], "name": row[2]}


def sync_app(route_is_async: bool) -> FastAPI:
    engine = create_engine(URL.set(drivername="postgresql+psycopg"), **POOL)

    def get_db() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    app = FastAPI()
    if route_is_async:  # the original guide: async def over a sync Session (blocks the loop)

        @app.get("/users/{user_id}")
        async def get_user_async(
            user_id: int, db: Annotated[Session, Depends(get_db)], sleep: float = 0
        ) -> Any:
            return _row(db.exec(text(QUERY), params={"id": user_id, "sleep": sleep}).first())  # type: ignore[call-overload]

    else:  # def route: FastAPI runs it in its threadpool

        @app.get("/users/{user_id}")
        def get_user_sync(user_id: int, db: Annotated[Session, Depends(get_db)], sleep: float = 0) -> Any:
            return _row(db.exec(text(QUERY), params={"id": user_id, "sleep": sleep}).first())  # type: ignore[call-overload]

    return app


def async_session_app() -> FastAPI:
    """The reference app's pattern: async def + SQLModel's AsyncSession on asyncpg."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlmodel.ext.asyncio.session import AsyncSession

    engine = create_async_engine(URL, **POOL)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    async def get_db() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    app = FastAPI()

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, db: Annotated[AsyncSession, Depends(get_db)], sleep: float = 0) -> Any:
        result = await db.exec(text(QUERY), params={"id": user_id, "sleep": sleep})  # type: ignore[call-overload]
        return _row(result.first())

    return app


def raw_asyncpg_app() -> FastAPI:
    """No ORM, no session: the ceiling for this hardware."""
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(
            URL.set(drivername="postgresql").render_as_string(False), max_size=40
        )
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)
    sql = QUERY.replace(":id", "$1").replace(":sleep", "$2")

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, sleep: float = 0) -> Any:
        assert pool is not None
        return _row(await pool.fetchrow(sql, user_id, sleep))

    return app


BUILDERS = {
    "async-sync-session": lambda: sync_app(route_is_async=True),
    "def-sync-session": lambda: sync_app(route_is_async=False),
    "async-asyncsession": async_session_app,
    "raw-asyncpg": raw_asyncpg_app,
}
app = BUILDERS[VARIANT]()
