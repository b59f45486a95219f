"""Traces (OB06): off by default; on, one prediction request is one trace of the server span, the
SQL statements and the inference span, and the request's log lines carry its trace id.

The app's spans go to the SDK's in-memory exporter (`create_app(span_exporter=...)`), exported
as each span ends: the test reads them as soon as the response is in.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from example_app.core.config import Settings, load_settings
from example_app.core.log_format import formatter
from example_app.core.request_id import HEADER, RequestIdFilter
from example_app.core.security import create_access_token
from example_app.core.tracing import TraceIdFilter
from example_app.main import create_app
from tests.support import bearer, http_client, path

DIGIT = {"pixels": [0.0] * 64}
log = logging.getLogger("example_app.tests.tracing")


@pytest.fixture
async def traced(settings: Settings) -> AsyncIterator[tuple[FastAPI, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    app = create_app(settings, span_exporter=spans)

    async def logs_a_line() -> None:
        log.warning("a line inside the request")

    app.add_api_route("/logs-a-line", logs_a_line)
    async with LifespanManager(app):
        yield app, spans


@pytest.fixture
async def user_id(traced: tuple[FastAPI, InMemorySpanExporter], password_hash: str) -> AsyncIterator[int]:
    """A committed user (the app reads it on its own engine, not in a test's transaction); it
    and the prediction rows logged meanwhile are deleted after the test."""
    engine = traced[0].state.resources.engine
    insert = text("INSERT INTO users (email, hashed_password, name) VALUES (:e, :h, 'T') RETURNING id")
    async with engine.begin() as conn:
        new_id = (await conn.execute(insert, {"e": "traced@example.com", "h": password_hash})).scalar_one()
        last_row = (await conn.execute(text("SELECT coalesce(max(id), 0) FROM predictions"))).scalar_one()
    traced[1].clear()  # these statements' spans: traces of their own, before the test's request
    yield int(new_id)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM predictions WHERE id > :last"), {"last": last_row})
        await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": new_id})


# --8<-- [start:trace_test]
@pytest.mark.pattern("OB06")
async def test_a_prediction_is_one_trace_of_route_sql_and_inference_spans(
    traced: tuple[FastAPI, InMemorySpanExporter], user_id: int, settings: Settings
) -> None:
    app, exporter = traced
    async with http_client(app) as client:
        headers = bearer(create_access_token(settings, user_id))
        answer = await client.post(path("predict"), json=DIGIT, headers=headers)
    assert answer.status_code == 200, answer.text

    spans = exporter.get_finished_spans()
    (server,) = [span for span in spans if span.kind == SpanKind.SERVER]
    assert server.name == "POST /api/v1/predictions"  # the route template, not the raw path
    assert server.attributes is not None
    assert server.attributes["http.status_code"] == 200
    assert server.attributes["request.id"] == answer.headers[HEADER]  # joins the log and the row
    (inference,) = [span for span in spans if span.name == "inference"]
    model = app.state.resources.models.models["digits"]
    assert inference.attributes == {
        "model.name": "digits",
        "model.version": model.version,
        "inference.rows": 1,
    }
    statements = [span for span in spans if span.kind == SpanKind.CLIENT and span.attributes]
    assert {span.name.split()[0] for span in statements} >= {"SELECT", "INSERT"}  # the user, the log row
    assert all(span.attributes and span.attributes["db.system"] == "postgresql" for span in statements)
    assert {span.context.trace_id for span in spans} == {server.context.trace_id}  # one trace


# --8<-- [end:trace_test]


@pytest.mark.pattern("OB06")
async def test_a_log_line_inside_a_request_carries_its_trace_id(
    traced: tuple[FastAPI, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)  # as logging.json makes the served app's handler
    handler.setFormatter(formatter("json"))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(TraceIdFilter())
    log.addHandler(handler)
    try:
        async with http_client(app) as client:
            answer = await client.get("/logs-a-line")
    finally:
        log.removeHandler(handler)
    assert answer.status_code == 200
    line = json.loads(lines.getvalue())
    (server,) = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
    assert line["trace_id"] == f"{server.context.trace_id:032x}"
    assert line["request_id"] == answer.headers[HEADER]


@pytest.mark.pattern("OB06")
async def test_probes_and_scrapes_make_no_trace(traced: tuple[FastAPI, InMemorySpanExporter]) -> None:
    app, exporter = traced
    async with http_client(app) as client:
        assert (await client.get(path("live"))).status_code == 200
        assert (await client.get("/metrics")).status_code == 404
    assert exporter.get_finished_spans() == ()


@pytest.mark.pattern("OB06")
def test_tracing_is_off_unless_an_exporter_is_named(settings: Settings) -> None:
    app = create_app(settings)  # the tests' environment, like the default: no OTEL_TRACES_EXPORTER
    assert app.state.tracing is None
    assert not [m for m in app.user_middleware if "OpenTelemetry" in m.cls.__name__]  # type: ignore[attr-defined]
    on = create_app(load_settings(**{**settings.model_dump(), "OTEL_TRACES_EXPORTER": "console"}))
    assert on.state.tracing is not None
    with pytest.raises(SystemExit, match="OTEL_TRACES_EXPORTER"):  # one line, no start
        load_settings(**{**settings.model_dump(), "OTEL_TRACES_EXPORTER": "zipkin"})
