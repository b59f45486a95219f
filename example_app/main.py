"""The FastAPI application: routers, middleware and the lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from example_app.api.errors import register_error_handlers
from example_app.api.routes import health, posts, users
from example_app.core.config import get_settings
from example_app.core.database import engine
from example_app.models.timestamps import utcnow


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Start-up work goes here: load models, warm caches (the schema is Alembic's job).
    app.state.started_at = utcnow()
    yield
    del app.state.started_at
    await engine.dispose()  # close pooled connections on shutdown


# --8<-- [end:lifespan]


# --8<-- [start:app]
settings = get_settings()
app = FastAPI(title="fastapi-ml-guide reference app", debug=settings.DEBUG, lifespan=lifespan)
register_error_handlers(app)
for module in (health, users, posts):
    app.include_router(module.router, prefix=settings.API_V1_PREFIX)  # /api/v1 + /users + /{id}
# --8<-- [end:app]
