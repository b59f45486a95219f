"""Traces (OB06): OpenTelemetry, off unless OTEL_TRACES_EXPORTER names an exporter.

On, each request is a trace: FastAPI's instrumentation makes the server span, SQLAlchemy's a
span per statement on the app's engine, and the inference service one span of its own per
prediction call, with the model's name and version. The SDK reads the other standard variables
itself: OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_BSP_*.

Everything is made per app (a provider of its own, not the global one), like the engine and the
metrics: two apps in one process trace apart, and a test reads its app's spans alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp

from example_app.core.config import TracesExporter
from example_app.core.trace_sampling import EdgeTraceIds, SampledAtTheEdge

SERVICE = "fastapi-ml-guide"  # the service name unless OTEL_SERVICE_NAME says another
# Probes and scrapes come every few seconds from machines, not users: a trace each is noise.
UNTRACED = "health/live,health/ready,metrics"


# --8<-- [start:tracing]
@dataclass
class Tracing:
    provider: TracerProvider
    tracer: trace.Tracer = field(init=False)

    def __post_init__(self) -> None:
        self.tracer = self.provider.get_tracer("example_app")

    @classmethod
    def from_settings(
        cls, exporter_name: TracesExporter, exporter: SpanExporter | None = None
    ) -> Tracing | None:
        """None when tracing is off. `exporter` (a test's in-memory one) is exported to at each
        span's end; the others in batches, from a thread, off the request's path."""
        if exporter is None and exporter_name == "none":
            return None
        # Its sampler is OTEL_TRACES_SAMPLER's; its ids let the edge's decision stand (trace_sampling.py).
        resource = Resource.create({"service.name": SERVICE})  # OTEL_SERVICE_NAME wins
        provider = TracerProvider(resource=resource, id_generator=EdgeTraceIds())
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            provider.add_span_processor(BatchSpanProcessor(_exporter(exporter_name)))
        return cls(provider)

    def instrument_app(self, app: FastAPI) -> None:
        """The server span of each sampled request, around every middleware of the app; an
        unsampled request skips the instrumentation (trace_sampling.py)."""
        # No spans of their own for each ASGI message sent and received: one per request is enough.
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self.provider, excluded_urls=UNTRACED, exclude_spans=["receive", "send"]
        )
        build_traced = app.build_middleware_stack  # Starlette's hook, as the instrumentor wraps it

        def build_middleware_stack() -> ASGIApp:
            traced = build_traced()  # ServerErrorMiddleware(OpenTelemetryMiddleware(the app's stack))
            middleware = traced.app if isinstance(traced, ServerErrorMiddleware) else None
            if not isinstance(middleware, OpenTelemetryMiddleware):
                raise RuntimeError(f"FastAPI's instrumentation built an unexpected stack: {traced!r}")
            sampler, ids = self.provider.sampler, self.provider.id_generator  # OTEL_TRACES_SAMPLER's
            return SampledAtTheEdge(
                traced, middleware.app, sampler, ids, re.compile(UNTRACED.replace(",", "|"))
            )

        app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """A span per SQL statement on this engine (listeners of its own; none on other engines)."""
        # Its pool-use counter goes to OpenTelemetry's meter, a no-op here: /metrics counts the pool.
        meter = metrics.get_meter_provider().get_meter("example_app")
        usage = meter.create_up_down_counter("db.client.connections.usage")
        EngineTracer(self.tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]

    def shutdown(self) -> None:
        self.provider.shutdown()  # the spans still in the batch are exported first


# --8<-- [end:tracing]


def _exporter(name: TracesExporter) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported only when used: OTLP over HTTP, to OTEL_EXPORTER_OTLP_ENDPOINT (a collector).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


# --8<-- [start:log_filter]
class TraceIdFilter(logging.Filter):
    """A record logged inside a sampled span gets `trace_id` and `span_id`: a JSON log line and
    the trace it belongs to join on them (the request id joins the rest)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


# --8<-- [end:log_filter]
