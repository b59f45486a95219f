"""The FastAPI application: routers, middleware and the lifespan."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from example_app.api.admission import Admission, AdmissionLimit
from example_app.api.body_limit import BodySizeLimit
from example_app.api.errors import register_error_handlers
from example_app.api.routes import auth, health, jobs, posts, predictions, users
from example_app.api.swagger_ui import serve_swagger_ui
from example_app.core.budget import enforce_connection_budget
from example_app.core.config import get_settings, signing_key
from example_app.core.database import engine
from example_app.ml.embedding import embedder_or_none
from example_app.ml.inference import Inference
from example_app.ml.registry import DIGITS, ModelRegistry
from example_app.models.timestamps import utcnow


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Start-up work: load each model once (checksum verified) and hold it on app state; a bad
    # artifact is logged in one line and keeps /health/ready at 503. The schema is Alembic's job.
    settings = get_settings()
    await enforce_connection_budget(engine, settings)  # fits max_connections, or no start
    app.state.started_at = utcnow()
    app.state.models = ModelRegistry.load({DIGITS: settings.MODEL_DIR})
    app.state.inference = Inference(settings.INFERENCE_CONCURRENCY, settings.INFERENCE_TIMEOUT)
    app.state.embedder = embedder_or_none()  # search's text embeddings (wordllama, from its wheel)
    # What start-up made (models, metadata, schemas: ~145,000 objects) lives until shutdown. Frozen,
    # the garbage collector's full collections no longer walk it: they took 128 ms each, a pause
    # of the event loop that every request waiting at that moment paid (ML02 on the Serving page).
    gc.collect()  # garbage first: what is frozen is never collected
    gc.freeze()
    yield
    gc.unfreeze()
    del app.state.started_at, app.state.models, app.state.inference, app.state.embedder
    await engine.dispose()  # close pooled connections on shutdown


# --8<-- [end:lifespan]


# --8<-- [start:app]
settings = get_settings()
signing_key(settings)  # no SECRET_KEY, no start: one line, before anything is served
app = FastAPI(title="fastapi-ml-guide reference app", debug=settings.DEBUG, lifespan=lifespan, docs_url=None)
serve_swagger_ui(app)  # /docs from local files, not a CDN
register_error_handlers(app)
app.add_middleware(BodySizeLimit, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
# Added last, so it runs first: a prediction over the limit is shed before anything else.
PREDICTIONS = [f"{settings.API_V1_PREFIX}/predictions", f"{settings.API_V1_PREFIX}/predictions/batch"]
predictions_admitted = AdmissionLimit(settings.PREDICTION_MAX_IN_PROGRESS)  # tests may change it
app.add_middleware(Admission, paths=PREDICTIONS, counter=predictions_admitted)
for module in (health, auth, users, posts, predictions, jobs):
    app.include_router(module.router, prefix=settings.API_V1_PREFIX)  # /api/v1 + /users + /{id}
# --8<-- [end:app]
