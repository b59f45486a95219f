"""The FastAPI application: routers, middleware and the lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from example_app.api.routes import health
from example_app.core.config import get_settings
from example_app.core.database import engine


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Start-up work goes here (the schema is Alembic's job, never create_all).
    yield
    await engine.dispose()  # close pooled connections on shutdown


# --8<-- [end:lifespan]


settings = get_settings()
app = FastAPI(title="fastapi-ml-guide reference app", debug=settings.DEBUG, lifespan=lifespan)
app.include_router(health.router, prefix=settings.API_V1_PREFIX)
