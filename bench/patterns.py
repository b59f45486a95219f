"""The same SQL served without the app (`uvicorn --factory bench.patterns:create_app`, BENCH_PATTERN,
BENCH_READS): the floors of the hot path and Decision 6's patterns. See docs/performance.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import import_module
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response

PATTERNS = ("raw-asyncpg", "core", "driver", "async-session", "def-sync-session", "async-sync-session")
SYNC_POOL = {"pool_size": 20, "max_overflow": 20}  # Decision 6's: as many as the threadpool's threads


@dataclass(frozen=True)
class Read:
    path: str  # e.g. /api/v1/posts/{id}
    sql: str  # asyncpg's form: $1, $2...
    args: tuple[Any, ...]  # per placeholder: ":name" or ":name=default" (the request's value), or a constant
    schema: str = ""  # "module:Class" of the response (else the columns as they are)
    many: bool = False
    nest: str = ""  # "author": columns author_id and author_name answered as {"author": {"id", "name"}}
    auth: bool = False  # the bearer token must be the user's named by :id

    def env(self) -> Any:
        return asdict(self)


def values(read: Read, request: Request) -> list[Any]:
    """The statement's parameters: the request's numbers (path, then query) where `args` names them."""
    found = []
    for arg in read.args:
        if not (isinstance(arg, str) and arg.startswith(":")):
            found.append(arg)
            continue
        name, _, default = arg[1:].partition("=")
        raw = request.path_params.get(name, request.query_params.get(name, default))
        try:
            found.append(json.loads(raw))
        except ValueError:
            raise HTTPException(422, f"{name} must be a number") from None
    return found


def as_text(sql: str) -> Any:
    """asyncpg's `$1::INTEGER` placeholders as a SQLAlchemy text() with `CAST(:p1 AS INTEGER)`."""
    from sqlalchemy import text

    return text(
        re.sub(r"\$(\d+)(?:::(\w+))?", lambda m: f"CAST(:p{m[1]} AS {m[2]})" if m[2] else f":p{m[1]}", sql)
    )


def renderer(read: Read) -> Callable[[list[dict[str, Any]]], Response]:
    from pydantic import TypeAdapter

    schema: Any = None
    if read.schema:
        module, name = read.schema.split(":")
        schema = getattr(import_module(module), name)
        schema = TypeAdapter(list[schema] if read.many else schema)

    def render(rows: list[dict[str, Any]]) -> Response:
        if read.nest:
            for row in rows:
                row[read.nest] = {"id": row[f"{read.nest}_id"], "name": row.pop(f"{read.nest}_name")}
        if not read.many and not rows:
            raise HTTPException(404, "Not found")
        content = rows if read.many else rows[0]
        body = (
            schema.dump_json(schema.validate_python(content)) if schema else json.dumps(content, default=str)
        )
        return Response(body, media_type="application/json")

    return render


def create_app() -> FastAPI:
    from example_app.core.config import load_settings
    from example_app.core.database import create_engine, read_options
    from example_app.core.security import user_id_from_token

    settings = load_settings()
    pattern = os.environ["BENCH_PATTERN"]
    reads = [Read(**{**r, "args": tuple(r["args"])}) for r in json.loads(os.environ["BENCH_READS"])]
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncpg

        url = settings.database_url.set(drivername="postgresql").render_as_string(hide_password=False)
        if pattern == "raw-asyncpg":  # jsonb decoded as SQLAlchemy's dialect does it
            codec = {"encoder": json.dumps, "decoder": json.loads, "schema": "pg_catalog"}

            async def init(conn: Any) -> None:
                for kind in ("json", "jsonb"):
                    await conn.set_type_codec(kind, **codec)

            size = settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW  # the app's pool holds as many
            state["pool"] = await asyncpg.create_pool(url, min_size=0, max_size=size, init=init)
        yield
        if "pool" in state:
            await state["pool"].close()
        for engine in engines:
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/api/v1/health", lambda: {"status": "ok"})
    engine = create_engine(settings)  # the app's own: pool, timeouts, statement cache
    reads_engine = engine.execution_options(**read_options(settings))  # a GET's: no transaction
    engines: list[Any] = [engine]

    # --8<-- [start:floors]
    async def raw_asyncpg(read: Read, args: list[Any]) -> list[dict[str, Any]]:
        return [dict(row) for row in await state["pool"].fetch(read.sql, *args)]

    async def core(read: Read, args: list[Any]) -> list[dict[str, Any]]:
        async with reads_engine.connect() as conn:
            result = await conn.execute(texts[read.path], {f"p{i + 1}": v for i, v in enumerate(args)})
            return [dict(row) for row in result.mappings()]

    async def driver(read: Read, args: list[Any]) -> list[dict[str, Any]]:
        async with reads_engine.connect() as conn:  # the pool's connection, without a transaction
            asyncpg_connection = (await conn.get_raw_connection()).driver_connection
            return [dict(row) for row in await asyncpg_connection.fetch(read.sql, *args)]  # type: ignore[union-attr]

    # --8<-- [end:floors]
    texts = {read.path: as_text(read.sql) for read in reads}
    fetch: Any = {"raw-asyncpg": raw_asyncpg, "core": core, "driver": driver}.get(pattern)
    if pattern == "async-session":  # Decision 6's: an AsyncSession running the SQL as text
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

        engines.append(session_engine := create_async_engine(settings.database_url, **SYNC_POOL))

        async def async_session(read: Read, args: list[Any]) -> list[dict[str, Any]]:
            async with AsyncSession(session_engine) as session:
                result = await session.execute(texts[read.path], {f"p{i + 1}": v for i, v in enumerate(args)})
                return [dict(row) for row in result.mappings()]

        fetch = async_session
    elif pattern.endswith("sync-session"):  # the original guide's: a sync Session (psycopg)
        from sqlalchemy import create_engine as create_sync_engine
        from sqlalchemy.orm import Session

        sync_engine = create_sync_engine(
            settings.database_url.set(drivername="postgresql+psycopg"), **SYNC_POOL
        )

        def sync_session(read: Read, args: list[Any]) -> list[dict[str, Any]]:
            with Session(sync_engine) as session:
                result = session.execute(texts[read.path], {f"p{i + 1}": v for i, v in enumerate(args)})
                return [dict(row) for row in result.mappings()]

        fetch = sync_session

    def route(read: Read) -> Callable[..., Any]:
        render = renderer(read)

        def rows(request: Request) -> Any:  # the rows, or what to await for them
            args = values(read, request)
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if read.auth and user_id_from_token(settings, token) != args[0]:
                raise HTTPException(401, "Invalid or expired token")
            return fetch(read, args)

        def in_a_thread(request: Request) -> Response:  # a plain def: FastAPI runs it in its threadpool
            return render(rows(request))

        async def on_the_loop(request: Request) -> Response:  # async-sync-session: blocks the loop
            found = rows(request)
            return render(found if pattern == "async-sync-session" else await found)

        return in_a_thread if pattern == "def-sync-session" else on_the_loop

    for read in reads:
        app.add_api_route(read.path, route(read), methods=["GET"])
    return app
