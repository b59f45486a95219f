"""GET /metrics (OB02, OB03): who may read it, and each metric read back after a test caused it.

Each test makes an app of its own: its registry starts at zero, whatever other tests counted.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from pathlib import Path

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML (mkdocs uses it); no stubs pinned
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from devtools.postgres_provider import free_port
from example_app.ml.artifact import DIGITS_MODEL_DIR
from example_app.schemas.job import FINAL_STATUSES
from tests.support import ROOT, AppFactory, Caller, ClientFactory, bearer, http_client, path, queue_as

TOKEN = "metrics-reader-" + "x" * 24
DIGIT = json.loads((DIGITS_MODEL_DIR / "example-request.json").read_text())


# --8<-- [start:scrape]
async def scrape(client: AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape: (name, labels) -> value, parsed by prometheus-client's parser."""
    response = await client.get("/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --8<-- [end:scrape]


async def metered(make_app: AppFactory, make_client: ClientFactory) -> tuple[FastAPI, AsyncClient]:
    app = await make_app(METRICS_TOKEN=TOKEN)
    return app, await make_client(app)


# --8<-- [start:access_tests]
@pytest.mark.pattern("OB03")
async def test_metrics_are_not_there_unless_a_token_is_set(client: AsyncClient, app: FastAPI) -> None:
    response = await client.get("/metrics")  # the tests' settings, like the default: no token
    assert response.status_code == 404
    assert "http_requests" not in response.text
    assert app.state.metrics is None  # nothing counts what nobody may read: no cost either
    assert "RequestMetrics" not in [getattr(m.cls, "__name__", "") for m in app.user_middleware]


@pytest.mark.pattern("OB03")
async def test_with_a_token_only_its_bearer_reads_the_metrics(
    make_app: AppFactory, make_client: ClientFactory, caller: Caller
) -> None:
    app, client = await metered(make_app, make_client)
    for headers in ({}, bearer("wrong"), bearer(TOKEN + "x"), caller.headers, {"Authorization": TOKEN}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert "http_requests" not in refused.text
    assert (await client.get("/metrics", headers=bearer(TOKEN))).status_code == 200
    assert "/metrics" not in app.openapi()["paths"]  # no operation of the API: a scraper's page


# --8<-- [end:access_tests]


# --8<-- [start:metric_tests]
@pytest.mark.pattern("OB02")
async def test_requests_are_counted_and_timed_by_route_template_method_and_status(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    _app, client = await metered(make_app, make_client)
    for post_id in (987_654_321, 987_654_322, 987_654_323):  # three paths, one template
        assert (await client.get(path("get_post", post_id=post_id))).status_code == 404
    assert (await client.get("/no/such/page")).status_code == 404
    samples = await scrape(client)
    by_post = {"route": "/api/v1/posts/{post_id}", "method": "GET", "status": "404"}
    assert value(samples, "http_requests_total", **by_post) == 3
    assert value(samples, "http_request_duration_seconds_count", **by_post) == 3
    assert value(samples, "http_request_duration_seconds_sum", **by_post) > 0
    assert value(samples, "http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not [labels for name, labels in samples if ("route", "/no/such/page") in labels]
    assert value(samples, "http_requests_in_flight") == 1  # the scrape itself, nothing else


@pytest.mark.pattern("OB02")
async def test_inference_is_timed_by_model_name_and_version(
    make_app: AppFactory, make_client: ClientFactory, caller: Caller
) -> None:
    app, client = await metered(make_app, make_client)
    model = app.state.resources.models.models["digits"]
    for _ in range(2):
        assert (await client.post(path("predict"), json=DIGIT, headers=caller.headers)).status_code == 200
    samples = await scrape(client)
    labels = {"model": model.name, "version": model.version}
    assert value(samples, "inference_duration_seconds_count", **labels) == 2
    assert 0 < value(samples, "inference_duration_seconds_sum", **labels) < 5
    batch = {"rows": [DIGIT] * 5}
    assert (await client.post(path("predict_batch"), json=batch, headers=caller.headers)).status_code == 200
    samples = await scrape(client)
    assert value(samples, "inference_batch_rows_count", **labels) == 3  # 1 + 1 + one batch
    assert value(samples, "inference_batch_rows_sum", **labels) == 1 + 1 + 5
    assert value(samples, "inference_batch_rows_bucket", **labels, le="4.0") == 2  # the batch is over 4


@pytest.mark.pattern("OB02")
async def test_shed_requests_are_counted_by_reason(
    make_app: AppFactory, make_client: ClientFactory, caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = await metered(make_app, make_client)

    async def database_down() -> None:
        raise ConnectionRefusedError("connection refused")  # what asyncpg raises: an outage

    app.add_api_route("/down", database_down)
    monkeypatch.setattr(app.state.admission, "limit", 0)  # every prediction is shed
    for _ in range(3):
        assert (await client.post(path("predict"), json=DIGIT, headers=caller.headers)).status_code == 503
    assert (await client.get("/down")).status_code == 503
    samples = await scrape(client)
    assert value(samples, "http_requests_shed_total", reason="admission") == 3
    assert value(samples, "http_requests_shed_total", reason="database_down") == 1
    assert value(samples, "http_requests_shed_total", reason="pool_timeout") == 0
    shed = {"route": "unmatched", "method": "POST", "status": "503"}  # shed before routing
    assert value(samples, "http_requests_total", **shed) == 3


@pytest.mark.pattern("OB02")
async def test_a_pool_timeout_is_counted_as_shed(make_app: AppFactory) -> None:
    app = await make_app(METRICS_TOKEN=TOKEN, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.2)
    async with http_client(app) as client, app.state.resources.engine.connect():  # the only one, held
        assert (await client.get(path("list_posts"))).status_code == 503
        samples = await scrape(client)
    assert value(samples, "http_requests_shed_total", reason="pool_timeout") == 1
    assert value(samples, "db_pool_wait_seconds_count") == 1  # it waited 0.2 s, then gave up
    assert 0.2 <= value(samples, "db_pool_wait_seconds_sum") < 2


@pytest.mark.pattern("OB02")
async def test_pool_connections_in_use_and_waits_are_counted(make_app: AppFactory) -> None:
    app = await make_app(METRICS_TOKEN=TOKEN, DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1)
    engine = app.state.resources.engine
    async with http_client(app) as client:
        before = await scrape(client)
        assert value(before, "db_pool_connections_max") == 3
        async with engine.connect(), engine.connect():
            held = await scrape(client)
        after = await scrape(client)
    assert value(held, "db_pool_connections_in_use") == value(before, "db_pool_connections_in_use") + 2
    assert value(after, "db_pool_connections_in_use") == value(before, "db_pool_connections_in_use")
    assert value(after, "db_pool_wait_seconds_count") == 0  # a free connection each time


@pytest.mark.pattern("OB02")
async def test_a_checkout_that_waits_is_timed(make_app: AppFactory) -> None:
    app = await make_app(METRICS_TOKEN=TOKEN, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=5)
    engine = app.state.resources.engine

    async def hold_then_release() -> None:
        async with engine.connect():
            await asyncio.sleep(0.3)  # the list below waits for this connection

    async with http_client(app) as client:
        holder = asyncio.create_task(hold_then_release())
        await asyncio.sleep(0.05)
        assert (await client.get(path("list_posts"))).status_code == 200
        await holder
        samples = await scrape(client)
    assert value(samples, "db_pool_wait_seconds_count") == 1
    assert 0.1 < value(samples, "db_pool_wait_seconds_sum") < 2


async def test_two_apps_count_apart(make_app: AppFactory, make_client: ClientFactory) -> None:
    _first, first_client = await metered(make_app, make_client)
    _second, second_client = await metered(make_app, make_client)
    await first_client.get(path("list_posts"))
    by_list = {"route": "/api/v1/posts", "method": "GET", "status": "200"}
    assert value(await scrape(first_client), "http_requests_total", **by_list) == 1
    assert value(await scrape(second_client), "http_requests_total", **by_list) == 0


# --8<-- [end:metric_tests]


@pytest.mark.pattern("OB02")
async def test_the_dashboard_reads_only_metrics_the_app_exposes(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    _app, client = await metered(make_app, make_client)
    response = await client.get("/metrics", headers=bearer(TOKEN))
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exposed = {
        family.name + suffix
        for family in text_string_to_metric_families(response.text)
        for suffix in suffixes[family.type]
    }
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for query in queries for name in re.findall(r"\b(?:http|inference|db|jobs)_[a-z_]+", query)}
    assert len(used) >= 8, used
    assert used <= exposed, used - exposed  # Prometheus runs these queries in the full tier


# --8<-- [start:queue_tests]
def in_transaction_of(app: FastAPI, db: AsyncSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrape's reads on the test's connection, inside its rolled-back transaction (the way
    get_db is bound to it for the routes): the scrape sees what queue_as wrote, and only that."""
    monkeypatch.setattr(app.state.resources, "monitoring", db.bind)


@pytest.mark.pattern("OB02", "ML07")
async def test_the_job_queue_is_read_from_the_database_at_each_scrape(
    make_app: AppFactory,
    make_client: ClientFactory,
    db_session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = await metered(make_app, make_client)
    in_transaction_of(app, db_session, monkeypatch)
    await queue_as(
        db_session,
        waiting=[90, 30],
        running=1,
        later=1,
        ended={"succeeded": 3, "failed": 2},
        heartbeats=[4, 600],
    )
    samples = await scrape(client)
    assert value(samples, "jobs_queue_up") == 1
    assert value(samples, "jobs_queue_depth", status="todo") == 3  # the one scheduled later is queued too
    assert value(samples, "jobs_queue_depth", status="doing") == 1
    ended = {status: value(samples, "jobs_ended", status=status) for status in FINAL_STATUSES}
    assert ended == {"succeeded": 3, "failed": 2, "cancelled": 0, "aborted": 0}
    assert value(samples, "jobs_oldest_todo_age_seconds") == 90  # ...but does not wait yet
    assert value(samples, "jobs_worker_heartbeat_age_seconds") == 4  # the freshest
    assert value(samples, "jobs_workers_alive") == 1

    await queue_as(db_session, heartbeats=[600])  # the only worker is long dead; nothing waits
    samples = await scrape(client)  # read again: nothing is kept between scrapes
    assert value(samples, "jobs_workers_alive") == 0
    assert value(samples, "jobs_worker_heartbeat_age_seconds") == 600
    assert value(samples, "jobs_oldest_todo_age_seconds") == 0
    assert value(samples, "jobs_queue_depth", status="todo") == 0
    await queue_as(db_session)  # no worker ever registered
    assert value(await scrape(client), "jobs_worker_heartbeat_age_seconds") == math.inf


@pytest.mark.pattern("OB02")
async def test_a_scrape_answers_without_the_database_and_says_so(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = await metered(make_app, make_client)
    nowhere = create_async_engine(f"postgresql+asyncpg://nobody:x@127.0.0.1:{free_port()}/nothing")
    monkeypatch.setattr(app.state.resources, "monitoring", nowhere)
    try:
        await client.get(path("list_posts"))  # counted as always: the counters need no database
        samples = await scrape(client)
    finally:
        await nowhere.dispose()
    assert samples[("jobs_queue_up", frozenset())] == 0  # present, and saying it
    assert not [name for name, _ in samples if name.startswith("jobs_") and name != "jobs_queue_up"]
    assert value(samples, "http_requests_total", route="/api/v1/posts", method="GET", status="200") == 1


@pytest.mark.pattern("OB02")
async def test_a_scrape_reads_the_queue_on_a_connection_of_its_own(make_app: AppFactory) -> None:
    app = await make_app(METRICS_TOKEN=TOKEN, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.2)
    async with http_client(app) as client, app.state.resources.engine.connect():  # the pool's only one, held
        samples = await scrape(client)
    assert samples[("jobs_queue_up", frozenset())] == 1  # read all the same
    assert value(samples, "db_pool_wait_seconds_count") == 0  # and the requests' pool never saw it


@pytest.mark.pattern("OB02")
async def test_the_alert_rules_use_series_the_app_exposes(
    make_app: AppFactory,
    make_client: ClientFactory,
    db_session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = await metered(make_app, make_client)
    in_transaction_of(app, db_session, monkeypatch)
    exposed = {name for name, _ in await scrape(client)}
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())["groups"][0]["rules"]
    used = {name for rule in rules for name in re.findall(r"\bjobs_[a-z_]+", rule["expr"])}
    assert len(used) == len(rules) == 4
    assert used <= exposed, used - exposed


# --8<-- [end:queue_tests]


# --8<-- [start:workers_test]
@pytest.mark.system("python3 tasks.py serve --workers 2 as a process")
@pytest.mark.pattern("OB03")
def test_one_scrape_sums_the_requests_of_both_workers(database_url: str, tmp_path: Path) -> None:
    from tests.deployment.test_connection_budget import Log, serve, stop

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(
        database_url, port, "--workers", "2", METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)
    )
    log = Log(server)
    try:
        deadline = time.monotonic() + 240
        while log.count("Application startup complete") < 2:
            assert server.poll() is None, "".join(log.lines)
            assert time.monotonic() < deadline, "".join(log.lines)
            time.sleep(0.5)
        requests = 200
        for _ in range(requests):  # a connection each: the kernel hands them to either worker
            assert httpx.get(f"{url}/api/v1/health/live", timeout=10).status_code == 200
        counted = {path.name.rsplit("_", 1)[1] for path in tmp_path.glob("counter_*.db")}
        assert len(counted) == 2, counted  # both processes counted some of them
        scraped = httpx.get(f"{url}/metrics", headers=bearer(TOKEN), timeout=10)
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(scraped.text)
            for sample in family.samples
        }
        live = {"route": "/api/v1/health/live", "method": "GET", "status": "200"}
        assert value(samples, "http_requests_total", **live) == requests  # one answer, the sum
    finally:
        stop(server)
        log.reader.join(timeout=30)


# --8<-- [end:workers_test]
