"""What one app instance owns while it runs: opened by its lifespan, closed when it ends.

Everything here is made from the app's settings (create_app's argument), so two apps with
different settings live side by side in one process, each with its own engine and limits.
Dependencies reach them through the request (`request.app.state.resources`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry.trace import NoOpTracer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.api.admission import AdmissionLimit
from example_app.api.metrics import Metrics
from example_app.core.budget import enforce_connection_budget
from example_app.core.config import Settings
from example_app.core.database import (
    connect_args,
    create_engine,
    create_monitoring_engine,
    create_sessionmaker,
    read_options,
)
from example_app.core.rate_limit import LoginLimiter
from example_app.core.schema_version import SchemaHead
from example_app.core.security import Passwords
from example_app.core.tracing import Tracing
from example_app.ml.embedding import TextEmbedder, embedder_or_none
from example_app.ml.inference import Inference
from example_app.models.timestamps import utcnow
from example_app.services.alias_watcher import AliasWatcher, Connect
from example_app.services.micro_batch import MicroBatcher
from example_app.services.model_registry import ModelRegistry
from example_app.services.shadow import ShadowRunner


@dataclass
class Resources:
    engine: AsyncEngine  # its pool: DB_POOL_SIZE + DB_MAX_OVERFLOW connections at most
    sessions: async_sessionmaker[AsyncSession]
    monitoring: AsyncEngine  # no pool: what a scrape reads (the job queue), apart from requests
    read_options: Mapping[str, Any]  # a GET's session options (core/database.py)
    passwords: Passwords  # Argon2 off the event loop, PASSWORD_HASH_CONCURRENCY at once
    login_limiter: LoginLimiter
    models: ModelRegistry  # the registered versions behind their aliases, checksum verified
    model_watcher: AliasWatcher  # switches an alias in this process when it moves (LC02)
    inference: Inference  # INFERENCE_CONCURRENCY threads, INFERENCE_TIMEOUT each
    shadow: ShadowRunner  # the candidate's shadow predictions, after the responses (LC03)
    batcher: MicroBatcher | None  # single predictions, micro-batched (LC06); None: off
    embedder: TextEmbedder | None  # None: it failed to load, search answers 503
    schema: SchemaHead  # the revision this code needs: readiness compares the database's
    started_at: datetime


@asynccontextmanager
async def open_resources(
    settings: Settings,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
    admission: AdmissionLimit | None = None,
) -> AsyncIterator[Resources]:
    """Open what the app serves with; a bad artifact is logged in one line and keeps
    /health/ready at 503. Migrating is Alembic's job, not this one's: readiness only checks it."""
    engine = create_engine(settings)  # no connection yet: the pool opens them on demand
    monitoring = create_monitoring_engine(settings)  # no connection until a scrape reads
    try:
        await enforce_connection_budget(engine, settings)  # fits max_connections, or no start
        if metrics is not None:
            metrics.watch_pool(engine, settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW)
        if tracing is not None:
            tracing.instrument_engine(engine)  # a span per statement
        sessions = create_sessionmaker(engine)
        models = ModelRegistry(sessions, settings.MODEL_ROOTS, settings.MODEL_ALIAS)
        model_watcher = AliasWatcher(models, listener_connect(engine, settings), settings.MODEL_POLL_SECONDS)
        await model_watcher.start()  # the aliased versions, loaded and checked before the first request
        inference = Inference(
            settings.INFERENCE_CONCURRENCY,
            settings.INFERENCE_TIMEOUT,
            latency=metrics.inference if metrics else None,  # seconds by model and version
            batch_rows=metrics.batch_rows if metrics else None,
            tracer=tracing.tracer if tracing else NoOpTracer(),
        )
        resources = Resources(
            engine=engine,
            sessions=sessions,
            monitoring=monitoring,
            read_options=read_options(settings),
            passwords=Passwords.from_settings(settings),
            login_limiter=LoginLimiter.from_settings(settings),
            models=models,
            model_watcher=model_watcher,
            inference=inference,
            shadow=ShadowRunner(sessions, inference, metrics.shadow if metrics else None),
            batcher=micro_batcher(settings, inference, sessions, admission),
            embedder=embedder_or_none(),  # search's text embeddings (wordllama, from its wheel)
            schema=SchemaHead.read(),  # once, here: the files do not change while it runs
            started_at=utcnow(),
        )
        # What start-up made (models, metadata, schemas: ~145,000 objects) lives until shutdown.
        # Frozen, the garbage collector's full collections no longer walk it: they took 128 ms
        # each, a pause of the event loop that every request waiting at that moment paid (ML02
        # on the Serving page).
        gc.collect()  # garbage first: what is frozen is never collected
        gc.freeze()
        watching = asyncio.create_task(resources.model_watcher.run(), name="model-alias-watcher")
        shadowing = asyncio.create_task(resources.shadow.run(), name="shadow-predictions")
        try:
            yield resources
        finally:
            if resources.batcher is not None:
                await resources.batcher.close()  # what is collected is predicted and logged first
            for task in (shadowing, watching):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            gc.unfreeze()
    finally:
        await engine.dispose()  # close pooled connections on shutdown
        await monitoring.dispose()


def micro_batcher(
    settings: Settings,
    inference: Inference,
    sessions: async_sessionmaker[AsyncSession],
    admission: AdmissionLimit | None,
) -> MicroBatcher | None:
    """LC06's batcher, or None when MODEL_BATCH_WAIT_MS is 0 (off)."""
    if settings.MODEL_BATCH_WAIT_MS == 0:
        return None
    return MicroBatcher(
        inference,
        sessions,
        wait_seconds=settings.MODEL_BATCH_WAIT_MS / 1000,
        max_rows=settings.MODEL_BATCH_MAX_ROWS,
        admitted=(lambda: admission.singles) if admission is not None else None,
    )


def listener_connect(engine: AsyncEngine, settings: Settings) -> Connect | None:
    """How the alias watcher opens its LISTEN connection: the engine's server and credentials,
    outside its pool. None behind a transaction pooler, where LISTEN does not work: it polls."""
    if settings.DB_BEHIND_POOLER:
        return None
    _, options = engine.dialect.create_connect_args(engine.url)
    arguments = connect_args(settings)
    arguments["server_settings"]["application_name"] = f"{settings.DB_APPLICATION_NAME} model listener"

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(**options, **arguments)

    return connect
