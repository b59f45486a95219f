"""The FastAPI application, made by a factory from settings: routers, middleware, the lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from example_app.api.admission import Admission, AdmissionLimit
from example_app.api.body_limit import BodySizeLimit
from example_app.api.contract import show_model_contract
from example_app.api.errors import register_error_handlers
from example_app.api.metrics import Metrics, RequestMetrics, metrics_endpoint, process_exited
from example_app.api.request_id import RequestId
from example_app.api.routes import auth, drift, health, jobs, posts, predictions, shadow, users
from example_app.api.security_headers import SecurityHeaders
from example_app.api.swagger_ui import serve_swagger_ui
from example_app.core.config import API_V1_PREFIX, Settings, load_settings, signing_key
from example_app.core.tracing import Tracing
from example_app.resources import open_resources


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Engine, models, limits: opened at start-up from the app's own settings, closed at shutdown.
    tracing: Tracing | None = app.state.tracing
    async with open_resources(
        app.state.settings, app.state.metrics, tracing, app.state.admission
    ) as resources:
        app.state.resources = resources
        try:
            yield
        finally:
            process_exited()  # multiprocess mode: this worker's in-flight gauge leaves the sum
            if tracing is not None:
                tracing.shutdown()  # export what is left
        del app.state.resources


# --8<-- [end:lifespan]


# --8<-- [start:app]
def create_app(settings: Settings | None = None, *, span_exporter: SpanExporter | None = None) -> FastAPI:
    """A new app for `settings` (default: the environment's). Nothing opens until its lifespan.
    `span_exporter`: where its spans go (a test's in-memory exporter); default OTEL_TRACES_EXPORTER."""
    settings = settings or load_settings()  # a bad value stops here, in one line
    signing_key(settings)  # no SECRET_KEY, no start: one line, before anything is served
    app = FastAPI(
        title="fastapi-ml-guide reference app",
        debug=settings.DEBUG,
        lifespan=lifespan,
        docs_url=None,  # served below, from local files
        redoc_url=None,  # FastAPI's loads its script from a CDN, and no package ships one
    )
    app.state.settings = settings
    # Counted only when a scraper can read them (METRICS_TOKEN): off, no middleware, no cost.
    # A registry of each app's own: two apps in one process count apart.
    app.state.metrics = Metrics() if settings.METRICS_TOKEN is not None else None
    metrics: Metrics | None = app.state.metrics
    serve_swagger_ui(app)  # /docs from local files, not a CDN
    register_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.MAX_REQUEST_BODY_BYTES,
        drain_seconds=settings.REFUSED_BODY_DRAIN_SECONDS,
    )
    # Added late, so it runs early: a prediction over the limit is shed before anything else.
    # With micro-batching, a place admits a batch's worth of single predictions (api/admission.py).
    single, batch = f"{API_V1_PREFIX}/predictions", f"{API_V1_PREFIX}/predictions/batch"
    batching = settings.MODEL_BATCH_WAIT_MS > 0
    per_slot = settings.MODEL_BATCH_MAX_ROWS if batching else 1
    app.state.admission = AdmissionLimit(settings.PREDICTION_MAX_IN_PROGRESS, per_slot)
    app.add_middleware(
        Admission,
        paths=[single, batch],
        counter=app.state.admission,
        shed=metrics.shed if metrics else None,
        shared=[single] if batching else [],
    )
    app.add_middleware(RequestId)  # a shed request and a 413 have their id too
    app.add_middleware(SecurityHeaders)  # on every answer (a 500's: errors.py)
    if metrics is not None:
        app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: times them all
    # Not in the OpenAPI document: a Prometheus text page for a scraper, not the JSON API.
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for module in (health, auth, users, posts, predictions, drift, shadow, jobs):
        app.include_router(module.router, prefix=API_V1_PREFIX)  # /api/v1 + /users + /{id}
    show_model_contract(app)  # OpenAPI shows the request contract of the model version served
    app.state.tracing = Tracing.from_settings(settings.OTEL_TRACES_EXPORTER, span_exporter)
    if app.state.tracing is not None:
        app.state.tracing.instrument_app(app)  # off by default: no middleware at all
    return app


app = create_app()  # what `uvicorn example_app.main:app` serves
# --8<-- [end:app]
