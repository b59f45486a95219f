"""Traces (OB06): off by default; on, one prediction request is one trace of the server span, the
SQL statements and the inference span, and the request's log lines carry its trace id. Sampling
is decided once, at the request's edge (OB07's cost): an unsampled request runs no
instrumentation, a caller's sampled `traceparent` is honoured, and a ratio traces that share of
the requests, each whole.

The app's spans go to the SDK's in-memory exporter (`create_app(span_exporter=...)`), exported
as each span ends: the test reads them as soon as the response is in. The sampler is the one the
standard variables name (OTEL_TRACES_SAMPLER/_ARG; unset, every request is traced).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
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
def sampler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent-based ratio sampler at the ratio a test passes (`indirect` parametrization), as
    OTEL_TRACES_SAMPLER/_ARG configure it; none passed, the SDK's default: every request traced."""
    if (ratio := getattr(request, "param", None)) is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", str(ratio))


@pytest.fixture
async def traced(settings: Settings, sampler: None) -> AsyncIterator[tuple[FastAPI, InMemorySpanExporter]]:
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
def assert_one_prediction_trace(spans: Sequence[ReadableSpan], app: FastAPI) -> ReadableSpan:
    """The spans are one trace of a prediction: the server span (returned), the SQL, the inference."""
    (server,) = [span for span in spans if span.kind == SpanKind.SERVER]
    assert server.name == "POST /api/v1/predictions"  # the route template, not the raw path
    assert server.attributes is not None
    assert server.attributes["http.status_code"] == 200
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
    return server


@pytest.mark.pattern("OB06")
async def test_a_prediction_is_one_trace_of_route_sql_and_inference_spans(
    traced: tuple[FastAPI, InMemorySpanExporter], user_id: int, settings: Settings
) -> None:
    app, exporter = traced
    async with http_client(app) as client:
        headers = bearer(create_access_token(settings, user_id))
        answer = await client.post(path("predict"), json=DIGIT, headers=headers)
    assert answer.status_code == 200, answer.text

    server = assert_one_prediction_trace(exporter.get_finished_spans(), app)
    assert server.attributes is not None
    assert server.attributes["request.id"] == answer.headers[HEADER]  # joins the log and the row


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
        assert (await client.get(path("ready"))).status_code == 200  # its SQL: no trace of its own
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


@pytest.fixture
def sampler_asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Each span the parent-based sampler is asked about, in order: its name, and whether it
    has a parent (the sampler still decides)."""
    asked: list[tuple[str, bool]] = []
    decide = ParentBased.should_sample

    def should_sample(self: ParentBased, parent: Any, trace_id: int, name: str, *args: Any, **kw: Any) -> Any:
        asked.append((name, trace.get_current_span(parent).get_span_context().is_valid))
        return decide(self, parent, trace_id, name, *args, **kw)

    monkeypatch.setattr(ParentBased, "should_sample", should_sample)
    return asked


# --8<-- [start:unsampled_test]
@pytest.mark.pattern("OB06")
@pytest.mark.parametrize("sampler", [0.0], indirect=True)  # no request starts a trace
async def test_an_unsampled_request_is_decided_once_at_its_edge(
    traced: tuple[FastAPI, InMemorySpanExporter],
    user_id: int,
    settings: Settings,
    sampler_asked: list[tuple[str, bool]],
) -> None:
    """The cost of an unsampled request: one decision, then no server span and no span per
    statement (the instrumentation does not run); the inference span, under the request's
    non-recording parent, is dropped by the parent-based sampler instead of starting a trace."""
    app, exporter = traced
    async with http_client(app) as client:
        headers = bearer(create_access_token(settings, user_id))
        answer = await client.post(path("predict"), json=DIGIT, headers=headers)
    assert answer.status_code == 200, answer.text
    # The edge's decision (a root: by the method), the inference span's under its parent; no SQL's.
    assert sampler_asked == [("POST", False), ("inference", True)]
    assert exporter.get_finished_spans() == ()


# --8<-- [end:unsampled_test]


@pytest.mark.pattern("OB06")
@pytest.mark.parametrize("sampler", [0.0], indirect=True)
async def test_a_callers_sampled_traceparent_is_honoured_whole(
    traced: tuple[FastAPI, InMemorySpanExporter], user_id: int, settings: Settings
) -> None:
    """Parent-based: a caller that traces this request (W3C `traceparent`, sampled flag 01) gets
    the whole trace under its span, though this app would trace none of its own; flag 00, none."""
    app, exporter = traced
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = bearer(create_access_token(settings, user_id))
    async with http_client(app) as client:
        for flags in ("00", "01"):
            traceparent = f"00-{caller_trace}-{caller_span}-{flags}"
            answer = await client.post(
                path("predict"), json=DIGIT, headers={**headers, "traceparent": traceparent}
            )
            assert answer.status_code == 200, answer.text
            if flags == "00":
                assert exporter.get_finished_spans() == ()
    server = assert_one_prediction_trace(exporter.get_finished_spans(), app)
    assert f"{server.context.trace_id:032x}" == caller_trace
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == caller_span


def binomial_bounds(n: int, p: float, tail: float) -> tuple[int, int]:
    """The counts a Binomial(n, p) falls below, or above, with probability under `tail` each."""
    mass = [(1 - p) ** n]  # P(k), each from the one before: no factorial of n
    for k in range(n):
        mass.append(mass[-1] * (n - k) / (k + 1) * p / (1 - p))
    low = next(k for k in range(n + 1) if sum(mass[: k + 1]) >= tail)
    high = next(k for k in range(n, -1, -1) if sum(mass[k:]) >= tail)
    return low, high


RATIO, REQUESTS = 0.01, 2_000


@pytest.mark.pattern("OB06")
@pytest.mark.parametrize("sampler", [RATIO], indirect=True)
async def test_a_ratio_traces_that_share_of_requests_each_whole(
    traced: tuple[FastAPI, InMemorySpanExporter],
) -> None:
    """At 1 %, about 1 % of the requests are traces (a second, independent draw for the server
    span would make it 0.01 %), each with its SQL; no statement of an unsampled request starts a
    trace of its own. The bounds fail a correct app once in 50,000 runs."""
    app, exporter = traced
    async with http_client(app) as client:
        for _ in range(REQUESTS):  # a post that does not exist: one SELECT, then 404
            assert (await client.get(path("get_post", post_id=10**9))).status_code == 404
    spans = exporter.get_finished_spans()
    servers = {span.context.trace_id for span in spans if span.kind == SpanKind.SERVER}
    low, high = binomial_bounds(REQUESTS, RATIO, tail=1e-5)
    assert low <= len(servers) <= high, (low, len(servers), high)
    assert {span.context.trace_id for span in spans} == servers  # no orphan SQL span
    statements = [span for span in spans if span.kind == SpanKind.CLIENT]
    assert {span.context.trace_id for span in statements} == servers  # each trace has its SELECT
