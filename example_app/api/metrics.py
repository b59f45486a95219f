"""Prometheus metrics (OB02, OB03): what the app counts, the middleware that times every request,
and GET /metrics, which answers only a caller with METRICS_TOKEN.

Each app has its own registry, made by create_app: two apps in one process (the tests) count
apart. Under `--workers N` each worker is a process of its own with its own counters; with
PROMETHEUS_MULTIPROC_DIR set (tasks.py serve sets it), prometheus-client writes every value to
files in that folder, and a scrape of any worker reads them all: one answer, the sum of all.
"""

from __future__ import annotations

import hmac
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from example_app.api.probes import probe_database
from example_app.core.config import Settings
from example_app.core.database import FairPool
from example_app.services.queue_health import STATUSES, QueueHealth, read_queue_health

if TYPE_CHECKING:
    from example_app.resources import Resources  # which holds a Metrics: no import at run time

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable, read at import
UNMATCHED = "unmatched"  # no route: a 404, or a request shed before routing (the raw path is not
# a label: every scanner's guess would become a series of its own)
SHED_ADMISSION = "admission"  # PREDICTION_MAX_IN_PROGRESS reached (api/admission.py)
SHED_POOL_TIMEOUT = "pool_timeout"  # no free connection within DB_POOL_TIMEOUT
SHED_DATABASE_DOWN = "database_down"  # refused, reset, timed out, too many connections


# --8<-- [start:metrics]
@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        by_request = ["route", "method", "status"]  # route: the template, /api/v1/posts/{post_id}
        self.requests = Counter("http_requests", "Requests answered", by_request, registry=self.registry)
        self.latency = Histogram(
            "http_request_duration_seconds", "From the request's arrival to its last byte",
            by_request, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "http_requests_in_flight", "Requests in progress", registry=self.registry,
            multiprocess_mode="livesum",  # the sum over the workers alive
        )  # fmt: skip
        self.shed = Counter(
            "http_requests_shed", "Requests answered 503 + Retry-After, by reason", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.inference = Histogram(
            "inference_duration_seconds", "A prediction call, waiting for a thread included",
            ["model", "version"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )  # fmt: skip
        self.batch_rows = Histogram(
            "inference_batch_rows", "Rows in one prediction call", ["model", "version"],
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
        )  # fmt: skip
        self.shadow = Counter(
            "shadow_predictions", "Rows the candidate shadowed, by outcome (logged, or why not)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.pool_in_use = Gauge(
            "db_pool_connections_in_use", "Connections checked out of the pool", registry=self.registry,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_capacity = Gauge(
            "db_pool_connections_max", "DB_POOL_SIZE + DB_MAX_OVERFLOW: in use at this, a checkout waits",
            registry=self.registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_waits = Histogram(
            "db_pool_wait_seconds", "Checkouts that found no free connection, and how long they waited",
            registry=self.registry, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )  # fmt: skip

    def watch_pool(self, engine: AsyncEngine, capacity: int) -> None:
        """Count the engine's connections in use from its pool's own events, and time each wait
        for one (FairPool tells who waited and for how long; the timeouts are also shed 503s)."""
        self.pool_capacity.set(capacity)
        event.listen(engine.sync_engine, "checkout", lambda *_: self.pool_in_use.inc())
        event.listen(engine.sync_engine, "checkin", lambda *_: self.pool_in_use.dec())
        if isinstance(engine.pool, FairPool):
            engine.pool.on_wait(self.pool_waits.observe)

    def exposition(self) -> bytes:
        """The text a scrape gets: this app's registry, or every worker's files in multiprocess mode."""
        if MULTIPROCESS_DIR not in os.environ:
            return generate_latest(self.registry)
        registry = CollectorRegistry()  # read fresh on each scrape, as prometheus-client says
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def process_exited() -> None:
    """A worker's live gauges leave the sum when it stops (the lifespan's end)."""
    if MULTIPROCESS_DIR in os.environ:
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


# --8<-- [end:metrics]


# --8<-- [start:middleware]
class RequestMetrics:
    """Pure ASGI middleware: count and time each request by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.templates: dict[int, str] = {}  # by id of the app's routes, which live as long as it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # no answer started: an exception that Starlette turns into a 500 outside
        started = time.perf_counter()

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_see)
        finally:
            self.metrics.in_flight.dec()
            labels = (route_template(scope, self.templates), scope["method"], str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


def route_template(scope: Scope, known: dict[int, str]) -> str:
    """The template of the route the router chose (it put it in the scope: the same dict, seen
    here after the app ran), /api/v1/posts/{post_id}, never the raw path. `known` holds what
    earlier requests found, by route: a route is included once, under one prefix."""
    route = scope.get("route")
    if route is None or getattr(route, "path_format", None) is None:
        return UNMATCHED
    if (template := known.get(id(route))) is None:
        template = known[id(route)] = _full_template(route, scope["path"])
    return template


def _full_template(route: Any, path: str) -> str:
    # FastAPI keeps an included router's routes as declared: /posts/{post_id}, without the
    # include's prefix. The prefix is literal: the part of the path before what the route matched.
    for start, char in enumerate(path):
        if char == "/" and route.path_regex.match(path[start:]):
            return path[:start] + str(route.path_format)
    return str(route.path_format)


# --8<-- [end:middleware]


# --8<-- [start:endpoint]
async def metrics_endpoint(request: Request) -> Response:
    """404 unless METRICS_TOKEN is set; then only `Authorization: Bearer <METRICS_TOKEN>` reads."""
    token = request.app.state.settings.METRICS_TOKEN
    if token is None:
        raise HTTPException(404)  # off: nothing here to find
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(401, "A bearer token (METRICS_TOKEN) is required", {"WWW-Authenticate": "Bearer"})
    metrics: Metrics = request.app.state.metrics  # made with the token
    queue = await read_queue(request.app.state.resources, request.app.state.settings)
    return Response(metrics.exposition() + queue_exposition(queue), media_type=CONTENT_TYPE_LATEST)


# --8<-- [end:endpoint]


# --8<-- [start:queue_metrics]
async def read_queue(resources: Resources, settings: Settings) -> QueueHealth | None:
    """The job queue as the database holds it now, within HEALTH_CHECK_TIMEOUT, on a connection
    of its own (not the requests' pool); None if it did not answer (the scrape still answers,
    with `jobs_queue_up 0`)."""
    stalled = settings.JOB_STALLED_SECONDS
    async with AsyncSession(resources.monitoring) as db:
        queue, _ = await probe_database(
            db,
            lambda session: read_queue_health(session, stalled, counts=True),
            settings.HEALTH_CHECK_TIMEOUT,
        )
    return queue


def queue_exposition(queue: QueueHealth | None) -> bytes:
    """The job queue's gauges, in a registry made for this scrape: every worker's work, wherever
    it runs, is in the database, and any instance of the app (any of its processes) reads it."""
    registry = CollectorRegistry()
    registry.register(QueueCollector(queue))
    return generate_latest(registry)


class QueueCollector(Collector):
    """The gauges of one reading of the queue (None: the database did not answer)."""

    def __init__(self, queue: QueueHealth | None) -> None:
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        yield gauge(
            "jobs_queue_up", "1: the queue was read for this scrape, 0: it was not", self.queue is not None
        )
        if (queue := self.queue) is None:
            return  # no stale or made-up figures: the other series are absent
        depth = GaugeMetricFamily("jobs_queue_depth", "Jobs waiting, running", labels=["status"])
        ended = GaugeMetricFamily("jobs_ended", "Ended jobs still in the table", labels=["status"])
        for status in STATUSES:
            (depth if status in ("todo", "doing") else ended).add_metric([status], queue.jobs[status])
        yield from (depth, ended)
        yield gauge(
            "jobs_oldest_todo_age_seconds",
            "The oldest job due to run: its wait",
            queue.oldest_todo_seconds or 0,
        )
        heartbeat = math.inf if queue.heartbeat_seconds is None else queue.heartbeat_seconds  # no worker
        yield gauge("jobs_worker_heartbeat_age_seconds", "The freshest worker heartbeat: its age", heartbeat)
        yield gauge(
            "jobs_workers_alive", "Workers with a heartbeat within JOB_STALLED_SECONDS", queue.workers_alive
        )


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


# --8<-- [end:queue_metrics]
