"""Sampling decided once, at the edge of each request, before any instrumentation runs.

OpenTelemetry's ASGI middleware does its work for every request: it collects the request's
attributes, matches the route for the span's name, starts a span (a non-recording one when the
sampler drops it) and wraps send and receive; SQLAlchemy's listener then starts a span per
statement. An unsampled request pays nearly what a sampled one does. Here the edge asks the
provider's sampler (the one OTEL_TRACES_SAMPLER/_ARG configures) first, with the trace id the
request would have: a sampled request goes through the middleware, whose server span takes that
same trace id, so the sampler answers it the same; an unsampled one goes straight to the app.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any, cast

from opentelemetry import context, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.instrumentation.asgi import asgi_getter
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from starlette.types import ASGIApp, Receive, Scope, Send

_drawn: ContextVar[int | None] = ContextVar("edge_trace_id", default=None)


# --8<-- [start:ids]
class EdgeTraceIds(RandomIdGenerator):
    """Random ids, except that the first root span after a sampled edge decision (the server
    span) gets the trace id the decision was made on: a ratio sampler decides by the trace id,
    and a second, independent draw would trace ratio² of the requests."""

    def generate_trace_id(self) -> int:
        drawn = _drawn.get()
        if drawn is None:
            return super().generate_trace_id()
        _drawn.set(None)
        return drawn


# --8<-- [end:ids]


# --8<-- [start:edge]
class SampledAtTheEdge:
    """`traced`: the app inside OpenTelemetry's middleware; `untraced`: the same app without it;
    `sampler` and `ids`: the tracer provider's (its ids an EdgeTraceIds); `excluded`: the paths
    never traced (probes, scrapes)."""

    def __init__(
        self,
        traced: ASGIApp,
        untraced: ASGIApp,
        sampler: Sampler,
        ids: IdGenerator,
        excluded: re.Pattern[str],
    ) -> None:
        self.traced, self.untraced = traced, untraced
        self.sampler, self.ids, self.excluded = sampler, ids, excluded
        # The headers the propagators read (OTEL_PROPAGATORS; W3C's traceparent by default).
        self.fields = {name.encode("latin-1") for name in get_global_textmap().fields}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan: the middleware passes it through
            await self.traced(scope, receive, send)
            return
        if self.excluded.search(scope["path"]):
            await self._untraced(context.get_current(), scope, receive, send)
            return
        # A caller's trace context is the parent, as the middleware would read it; most requests
        # carry none, and the check costs less than extracting nothing.
        carried = any(name in self.fields for name, _ in scope["headers"])
        parent = (
            extract(cast(dict[str, Any], scope), getter=asgi_getter) if carried else context.get_current()
        )
        parent_ids = trace.get_current_span(parent).get_span_context()
        trace_id = parent_ids.trace_id if parent_ids.is_valid else self.ids.generate_trace_id()
        # The span's name is not known yet (the route is matched later): the method stands for it.
        # The standard samplers read only the parent and the trace id.
        decision = self.sampler.should_sample(parent, trace_id, scope["method"], trace.SpanKind.SERVER)
        if decision.decision is not Decision.DROP:  # recorded: the middleware makes the spans
            drawn = _drawn.set(None if parent_ids.is_valid else trace_id)
            try:
                await self.traced(scope, receive, send)
            finally:
                _drawn.reset(drawn)
            return
        # Unsampled: a non-recording span is the parent of whatever starts a span below (the
        # inference span), so a parent-based sampler drops it too instead of making it the root
        # of a trace of its own.
        span_id = self.ids.generate_span_id()
        ids = trace.SpanContext(trace_id, span_id, is_remote=False, trace_state=decision.trace_state)
        await self._untraced(
            trace.set_span_in_context(trace.NonRecordingSpan(ids), parent), scope, receive, send
        )

    async def _untraced(self, parent: Context, scope: Scope, receive: Receive, send: Send) -> None:
        # Suppressed, as suppress_instrumentation() does it: instrumented libraries (SQLAlchemy's
        # listener, per statement) return at once. One context, attached once.
        token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, parent))
        try:
            await self.untraced(scope, receive, send)
        finally:
            context.detach(token)


# --8<-- [end:edge]
