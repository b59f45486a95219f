"""The app is made by a factory (TT01): settings in, an app out; what it serves with is opened by
its lifespan, from its own settings. Two configurations live side by side in one process."""

from __future__ import annotations

import sys

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from example_app.core.config import Settings
from tests.support import AppFactory, http_client, path


# --8<-- [start:two_apps]
@pytest.mark.pattern("TT01")
async def test_two_apps_with_different_settings_live_side_by_side(app: FastAPI, make_app: AppFactory) -> None:
    small = await make_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, MAX_REQUEST_BODY_BYTES=1024)
    ours, theirs = app.state.resources, small.state.resources
    assert ours.engine is not theirs.engine  # each its own pool...
    assert (ours.engine.pool.size(), theirs.engine.pool.size()) == (app.state.settings.DB_POOL_SIZE, 1)
    assert ours.models is not theirs.models  # ...its own models, limits, hashing slots
    assert theirs.passwords.slots is not ours.passwords.slots
    body = b'{"email": "' + b"x" * 2000 + b'"}'  # 2 KiB: over the small app's limit only
    async with http_client(small) as to_small, http_client(app) as to_ours:
        assert (await to_small.post(path("create_user"), content=body)).status_code == 413
        assert (await to_ours.post(path("create_user"), content=body)).status_code == 422
        assert (await to_small.get(path("health"))).json()["database"] == "ok"
        assert (await to_ours.get(path("health"))).json()["database"] == "ok"


# --8<-- [end:two_apps]


@pytest.mark.pattern("TT01")
def test_importing_the_app_opens_nothing() -> None:
    """`app = create_app()` is the only thing built at import: no engine, pool, model or limiter
    is a module global of the app's; the module's app has no resources until its lifespan runs."""
    from example_app.core.rate_limit import LoginLimiter
    from example_app.core.security import Passwords
    from example_app.main import app as module_app
    from example_app.ml.inference import Inference
    from example_app.resources import Resources
    from example_app.services.model_registry import ModelRegistry

    opened = (AsyncEngine, async_sessionmaker, Passwords, LoginLimiter, ModelRegistry, Inference, Resources)
    app_modules = {name: m for name, m in sys.modules.items() if name.split(".")[0] == "example_app"}
    assert len(app_modules) > 30  # routes, services, models...: the whole app is imported
    found = [
        f"{name}.{attr}"
        for name, m in app_modules.items()
        for attr, v in vars(m).items()
        if isinstance(v, opened)
    ]
    assert found == []
    apps = [
        f"{name}.{attr}"
        for name, m in app_modules.items()
        for attr, v in vars(m).items()
        if isinstance(v, FastAPI)
    ]
    assert apps == ["example_app.main.app"]
    assert not hasattr(module_app.state, "resources")


@pytest.mark.pattern("TT01")
async def test_the_lifespan_closes_what_it_opened(settings: Settings, migrated: object) -> None:
    from asgi_lifespan import LifespanManager

    from example_app.main import create_app

    app = create_app(settings)
    async with LifespanManager(app):
        engine = app.state.resources.engine
        async with http_client(app) as client:
            assert (await client.get(path("health"))).status_code == 200
        assert engine.pool.checkedin() == 1  # the health check's connection, back in the pool
    assert not hasattr(app.state, "resources")
    assert engine.pool.checkedin() == 0  # disposed at shutdown: no connection left open
