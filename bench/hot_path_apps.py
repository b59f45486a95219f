"""The servers of the hot-path benchmark (bench/hot_path.py). uvicorn serves `create_app`
(`--factory`) with BENCH_VARIANT set:

- `app`: the reference app as its factory makes it (`example_app.main.create_app`, from the
  environment's settings), plus one route for the slow-query load of PF04: GET /bench/slow, a
  20 ms query through the app's own session dependency;
- `app` with BENCH_RESTORE naming levers: that app with what the hot-path work changed put back,
  one dependency override each (`pre_ping`: sessions on an engine that pings at every checkout;
  `transaction`: reads in a transaction; `whole_rows`: every column, the author by a second
  SELECT; `def_providers`: the service providers as plain `def`, which FastAPI runs in its
  threadpool; `built_per_request`: the statements built on every call; `orm_objects`: the
  reads loading table objects through the ORM rather than rows; `fair_pool`: SQLAlchemy's own
  pool queue, where a request arriving as a connection comes back takes it before those
  waiting);
- `raw-asyncpg`, `async-asyncsession`, `def-sync-session`, `async-sync-session`: small apps
  serving the same three reads with the very SQL the app sends (BENCH_SQL, captured by the
  bench), through asyncpg alone, AsyncSession with a text query (Decision 6's variant), and a
  sync Session in a `def` route or, as the original guide had it, in an `async def` route.

The database URL and SECRET_KEY come from the environment, as for the app itself.
"""

import json
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request

LEVERS = (
    "fair_pool",
    "pre_ping",
    "transaction",
    "whole_rows",
    "def_providers",
    "built_per_request",
    "orm_objects",
)
SMALL_APPS = ("raw-asyncpg", "async-asyncsession", "def-sync-session", "async-sync-session")
SLOW_QUERY_SECONDS = 0.02
Authorization = Annotated[str | None, Header()]
# Every server closes its idle connections when the bench POSTs here after its turn: a dozen
# servers side by side would otherwise hold more than max_connections between them.
RELEASE = "/bench/release"
POOL = {"pool_size": 20, "max_overflow": 20}  # the small apps': Decision 6's sizes


def create_app() -> FastAPI:
    variant = os.environ.get("BENCH_VARIANT", "app")
    if variant in SMALL_APPS:
        return small_app(variant, json.loads(os.environ["BENCH_SQL"]))
    if variant != "app":
        raise SystemExit(f"unknown BENCH_VARIANT {variant!r}")
    restore = [name for name in os.environ.get("BENCH_RESTORE", "").split(",") if name]
    unknown = set(restore) - set(LEVERS)
    if unknown:
        raise SystemExit(f"unknown levers in BENCH_RESTORE: {sorted(unknown)}")
    return reference_app(restore)


# --- the reference app, and what it was -----------------------------------------------------------


def reference_app(restore: Sequence[str]) -> FastAPI:
    from sqlalchemy import Integer, bindparam, text
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
    from sqlalchemy.orm import joinedload, selectinload
    from sqlmodel import col, select
    from sqlmodel.ext.asyncio.session import AsyncSession

    from example_app.api.dependencies import (
        READS,
        ResourcesDep,
        SessionDep,
        get_db,
        get_post_service,
        get_user_service,
    )
    from example_app.core.config import load_settings
    from example_app.core.database import create_sessionmaker
    from example_app.main import create_app as create_reference_app
    from example_app.models import Post, User
    from example_app.services.errors import NotFoundError
    from example_app.services.post import WITHOUT_EMBEDDING, PostService
    from example_app.services.user import UserService

    settings = load_settings()  # the environment's, as `uvicorn example_app.main:app` reads them
    app = create_reference_app(settings)

    # --8<-- [start:slow_route]
    async def slow(db: SessionDep) -> dict[str, bool]:  # a slow query, through the app's session
        await db.exec(text("SELECT pg_sleep(:s)"), params={"s": SLOW_QUERY_SECONDS})  # type: ignore[call-overload]
        return {"slept": True}

    app.add_api_route("/bench/slow", slow, methods=["GET"])
    # --8<-- [end:slow_route]

    engines: list[AsyncEngine] = []  # besides the app's own: the one a restored lever gives its sessions

    async def release(resources: ResourcesDep) -> dict[str, bool]:  # between its turns, no connection
        for engine in (resources.engine, *engines):
            await engine.dispose()
        return {"released": True}

    app.add_api_route(RELEASE, release, methods=["POST"])

    sessions: async_sessionmaker[AsyncSession] | None = None  # None: the app's own (its resources')
    if "pre_ping" in restore or "fair_pool" in restore:
        from sqlalchemy import event
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import AsyncAdaptedQueuePool

        from example_app.core.database import (
            FairPool,
            connect_args,
            discard_closed,
            refuse_writes_without_transaction,
        )

        engine = create_async_engine(
            settings.database_url,
            # What the app had: BEGIN, a ping and ROLLBACK at each checkout...
            pool_pre_ping="pre_ping" in restore,
            # ...and SQLAlchemy's own queue, where a newcomer may take a connection before a waiter.
            poolclass=AsyncAdaptedQueuePool if "fair_pool" in restore else FairPool,
            pool_size=settings.DB_POOL_SIZE,
            max_overflow=settings.DB_MAX_OVERFLOW,
            pool_timeout=settings.DB_POOL_TIMEOUT,
            connect_args={
                **connect_args(settings),
                "prepared_statement_cache_size": settings.DB_STATEMENT_CACHE_SIZE,
            },
        )
        if "pre_ping" not in restore:
            event.listen(engine.sync_engine, "checkout", discard_closed)
        event.listen(engine.sync_engine, "before_cursor_execute", refuse_writes_without_transaction)
        engines.append(engine)
        sessions = create_sessionmaker(engine)

    if sessions is not None or "transaction" in restore:
        in_a_transaction = "transaction" in restore

        # get_db as the app has it, with the sessions of the engine above and/or, for
        # `transaction`, no read options: every request then runs BEGIN ... ROLLBACK or COMMIT.
        async def get_db_restored(request: Request, resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
            reads = request.method in READS and not in_a_transaction
            options = resources.read_options if reads else {}
            factory = sessions if sessions is not None else resources.sessions
            async with factory(execution_options=options) as session:
                yield session

        app.dependency_overrides[get_db] = get_db_restored

    # What the app read before its reads returned rows: table objects, loaded by the ORM. The
    # routes' response_model reads either alike, by attribute.
    author_name = joinedload(Post.author, innerjoin=True).load_only(User.id, User.name, raiseload=True)  # type: ignore[arg-type]
    post_with_author = (
        select(Post).where(col(Post.id) == bindparam("post_id")).options(WITHOUT_EMBEDDING, author_name)
    )
    page = (
        select(Post)
        .options(WITHOUT_EMBEDDING)
        .order_by(col(Post.created_at).desc(), col(Post.id).desc())
        .offset(bindparam("skip", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
    )

    class OrmObjects(PostService):
        """Table objects through the ORM, the statements built once."""

        async def list_posts(self, *, skip: int, limit: int, author_id: int | None = None) -> Any:
            return (await self.db.exec(page, params={"skip": skip, "limit": limit})).all()

        async def get_with_author(self, post_id: int) -> Any:
            post = (await self.db.exec(post_with_author, params={"post_id": post_id})).first()
            if post is None:
                raise NotFoundError("Post", post_id)
            return post

    class WholeRowsPosts(PostService):
        """Every column (the embedding too), and the author by a second SELECT (selectinload)."""

        async def list_posts(self, *, skip: int, limit: int, author_id: int | None = None) -> Any:
            statement = select(Post).order_by(col(Post.created_at).desc(), col(Post.id).desc())
            return (await self.db.exec(statement.offset(skip).limit(limit))).all()

        async def get_with_author(self, post_id: int) -> Any:
            statement = select(Post).where(Post.id == post_id).options(selectinload(Post.author))  # type: ignore[arg-type]
            post = (await self.db.exec(statement)).first()
            if post is None:
                raise NotFoundError("Post", post_id)
            return post

    class BuiltPerRequest(PostService):
        """The same table objects, the statements built on every call instead of once, at import."""

        async def list_posts(self, *, skip: int, limit: int, author_id: int | None = None) -> Any:
            statement = select(Post).options(WITHOUT_EMBEDDING)
            statement = statement.order_by(col(Post.created_at).desc(), col(Post.id).desc())
            return (await self.db.exec(statement.offset(skip).limit(limit))).all()

        async def get_with_author(self, post_id: int) -> Any:
            statement = select(Post).where(Post.id == post_id).options(WITHOUT_EMBEDDING, author_name)
            post = (await self.db.exec(statement)).first()
            if post is None:
                raise NotFoundError("Post", post_id)
            return post

    class WholeRowsUsers(UserService):
        async def get(self, user_id: int) -> User:  # the password hash too
            user = await self.db.get(User, user_id)
            if user is None:
                raise NotFoundError("User", user_id)
            return user

    posts_class: type[PostService] = PostService
    if "whole_rows" in restore:
        posts_class = WholeRowsPosts
    elif "built_per_request" in restore:
        posts_class = BuiltPerRequest
    elif "orm_objects" in restore:
        posts_class = OrmObjects
    users_class = WholeRowsUsers if "whole_rows" in restore else UserService

    def def_posts(db: SessionDep) -> PostService:  # a plain def: a thread hop per request
        return posts_class(db)

    def def_users(db: SessionDep, resources: ResourcesDep) -> UserService:
        return users_class(db, resources.passwords)

    async def async_posts(db: SessionDep) -> PostService:
        return posts_class(db)

    async def async_users(db: SessionDep, resources: ResourcesDep) -> UserService:
        return users_class(db, resources.passwords)

    if restore:
        plain = "def_providers" in restore
        app.dependency_overrides[get_post_service] = def_posts if plain else async_posts
        app.dependency_overrides[get_user_service] = def_users if plain else async_users
    return app


# --- the same SQL, without the app ----------------------------------------------------------------


def _as_text(sql: str) -> str:
    """asyncpg's `$1::INTEGER` placeholders as SQLAlchemy text() parameters: `CAST(:p1 AS INTEGER)`."""
    return re.sub(r"\$(\d+)::(\w+)", r"CAST(:p\1 AS \2)", sql)


def _token_user(authorization: str | None) -> int:
    """The user id of a valid bearer token (what the app's auth dependency checks first)."""
    import jwt

    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "Not authenticated")
    try:
        claims = jwt.decode(
            authorization[7:],
            os.environ["SECRET_KEY"],
            algorithms=["HS256"],  # the app's one algorithm (example_app/core/security.py)
            options={"require": ["sub", "exp"]},
        )
    except jwt.InvalidTokenError:
        raise HTTPException(401, "Invalid or expired token") from None
    return int(claims["sub"])


def _params(query: dict[str, Any], **values: Any) -> list[Any]:
    """The captured parameters, with the request's own values in their places."""
    params = list(query["params"])
    for name, index in query.get("slots", {}).items():
        params[index] = values[name]
    return params


def small_app(variant: str, queries: dict[str, dict[str, Any]]) -> FastAPI:
    """GET /api/v1/posts/{id}, GET /api/v1/posts, GET /api/v1/users/{id} (with a token), each
    running the SQL the app sends for it and answering the row(s) as JSON."""
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["DATABASE_URL"])

    def one(row: Any) -> dict[str, Any]:
        if row is None:
            raise HTTPException(404, "Not found")
        return dict(row._mapping) if hasattr(row, "_mapping") else dict(row)

    if variant == "raw-asyncpg":  # no ORM, no session: the ceiling for this hardware
        import asyncpg

        pool: asyncpg.Pool | None = None

        async def new_pool() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                url.set(drivername="postgresql").render_as_string(False),
                min_size=0,  # connections are opened as they are needed
                max_size=POOL["pool_size"] + POOL["max_overflow"],
            )

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            nonlocal pool
            pool = await new_pool()
            yield
            await pool.close()

        app = FastAPI(lifespan=lifespan)

        @app.post(RELEASE)
        async def release_raw() -> Any:
            nonlocal pool
            assert pool is not None
            old, pool = pool, await new_pool()
            await old.close()
            return {"released": True}

        @app.get("/api/v1/posts/{post_id}")
        async def get_post(post_id: int) -> Any:
            assert pool is not None
            q = queries["get_post"]
            return one(await pool.fetchrow(q["sql"], *_params(q, id=post_id)))

        @app.get("/api/v1/posts")
        async def list_posts(skip: int = 0, limit: int = 20) -> Any:
            assert pool is not None
            q = queries["list_posts"]
            return [dict(r) for r in await pool.fetch(q["sql"], *_params(q, skip=skip, limit=limit))]

        @app.get("/api/v1/users/{user_id}")
        async def get_user(user_id: int, authorization: Authorization = None) -> Any:
            assert pool is not None
            if _token_user(authorization) != user_id:
                raise HTTPException(404, "Not found")
            q = queries["get_user"]
            return one(await pool.fetchrow(q["sql"], *_params(q, id=user_id)))

        return app

    from sqlalchemy import text

    texts = {name: text(_as_text(q["sql"])) for name, q in queries.items()}

    def named(q: dict[str, Any], **values: Any) -> dict[str, Any]:
        return {f"p{i + 1}": v for i, v in enumerate(_params(q, **values))}

    if variant == "async-asyncsession":  # Decision 6's variant: AsyncSession, a text query
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
        from sqlmodel.ext.asyncio.session import AsyncSession

        async_engine = create_async_engine(url, **POOL)
        sessions = async_sessionmaker(async_engine, class_=AsyncSession)

        async def get_async_db() -> AsyncIterator[AsyncSession]:
            async with sessions() as session:
                yield session

        app = FastAPI()

        @app.post(RELEASE)
        async def release_a() -> Any:
            await async_engine.dispose()
            return {"released": True}

        @app.get("/api/v1/posts/{post_id}")
        async def get_post_a(post_id: int, db: Annotated[AsyncSession, Depends(get_async_db)]) -> Any:
            q = queries["get_post"]
            return one((await db.exec(texts["get_post"], params=named(q, id=post_id))).first())  # type: ignore[call-overload]

        @app.get("/api/v1/posts")
        async def list_posts_a(
            db: Annotated[AsyncSession, Depends(get_async_db)], skip: int = 0, limit: int = 20
        ) -> Any:
            q = queries["list_posts"]
            rows = (await db.exec(texts["list_posts"], params=named(q, skip=skip, limit=limit))).all()  # type: ignore[call-overload]
            return [dict(r._mapping) for r in rows]

        @app.get("/api/v1/users/{user_id}")
        async def get_user_a(
            user_id: int,
            db: Annotated[AsyncSession, Depends(get_async_db)],
            authorization: Authorization = None,
        ) -> Any:
            if _token_user(authorization) != user_id:
                raise HTTPException(404, "Not found")
            q = queries["get_user"]
            return one((await db.exec(texts["get_user"], params=named(q, id=user_id))).first())  # type: ignore[call-overload]

        return app

    from sqlmodel import Session, create_engine

    engine = create_engine(url.set(drivername="postgresql+psycopg"), **POOL)

    def get_sync_db() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    app = FastAPI()

    @app.post(RELEASE)
    def release_s() -> Any:
        engine.dispose()
        return {"released": True}

    def read_post(db: Session, post_id: int) -> Any:
        return one(db.exec(texts["get_post"], params=named(queries["get_post"], id=post_id)).first())  # type: ignore[call-overload]

    def read_posts(db: Session, skip: int, limit: int) -> Any:
        rows = db.exec(texts["list_posts"], params=named(queries["list_posts"], skip=skip, limit=limit)).all()  # type: ignore[call-overload]
        return [dict(r._mapping) for r in rows]

    def read_user(db: Session, user_id: int, authorization: str | None) -> Any:
        if _token_user(authorization) != user_id:
            raise HTTPException(404, "Not found")
        return one(db.exec(texts["get_user"], params=named(queries["get_user"], id=user_id)).first())  # type: ignore[call-overload]

    if variant == "def-sync-session":  # FastAPI runs each route in its threadpool

        @app.get("/api/v1/posts/{post_id}")
        def get_post_s(post_id: int, db: Annotated[Session, Depends(get_sync_db)]) -> Any:
            return read_post(db, post_id)

        @app.get("/api/v1/posts")
        def list_posts_s(db: Annotated[Session, Depends(get_sync_db)], skip: int = 0, limit: int = 20) -> Any:
            return read_posts(db, skip, limit)

        @app.get("/api/v1/users/{user_id}")
        def get_user_s(
            user_id: int, db: Annotated[Session, Depends(get_sync_db)], authorization: Authorization = None
        ) -> Any:
            return read_user(db, user_id, authorization)

    else:  # the original guide: async def over a sync Session, which blocks the event loop

        @app.get("/api/v1/posts/{post_id}")
        async def get_post_o(post_id: int, db: Annotated[Session, Depends(get_sync_db)]) -> Any:
            return read_post(db, post_id)

        @app.get("/api/v1/posts")
        async def list_posts_o(
            db: Annotated[Session, Depends(get_sync_db)], skip: int = 0, limit: int = 20
        ) -> Any:
            return read_posts(db, skip, limit)

        @app.get("/api/v1/users/{user_id}")
        async def get_user_o(
            user_id: int, db: Annotated[Session, Depends(get_sync_db)], authorization: Authorization = None
        ) -> Any:
            return read_user(db, user_id, authorization)

    return app
