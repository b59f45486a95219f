"""A real Prometheus server scrapes the served app (OB02): the series it stores are the ones the
test caused, read back through Prometheus's own HTTP API, as a dashboard or an alert reads them.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from devtools.postgres_provider import free_port
from example_app.core.config import Settings, load_settings
from example_app.core.security import create_access_token
from example_app.main import create_app
from example_app.ml.artifact import DIGITS_MODEL_DIR
from tests.support import ROOT, bearer, path, scratch_database, served_in_thread, sync_url
from tests.test_metrics import TOKEN

PROMETHEUS = "/usr/bin/prometheus"  # Debian's package; `tasks.py test --all` installs it
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "dashboard.json").read_text())
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DIGIT = json.loads((DIGITS_MODEL_DIR / "example-request.json").read_text())


# --8<-- [start:scrape_config]
def scrape_config(target: str) -> str:
    """The scrape job a reader adds to prometheus.yml: the app's /metrics, with its bearer token;
    and the job queue's alerting rules (evaluated every second here, every minute by default)."""
    return f"""
global:
  evaluation_interval: 1s
rule_files:
  - {ALERTS}
scrape_configs:
  - job_name: fastapi-ml-guide
    scrape_interval: 1s
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: {TOKEN}
    static_configs:
      - targets: ["{target}"]
"""


# --8<-- [end:scrape_config]


@contextmanager
def prometheus(target: str, folder: Path) -> Iterator[str]:
    """Prometheus scraping `target` every second, on a loopback port; its base URL. Stopped by pid."""
    (folder / "prometheus.yml").write_text(scrape_config(target))
    port = free_port()
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("w"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def query(prometheus_url: str, promql: str) -> float | None:
    """An instant query's one value, or None while Prometheus has no such series."""
    answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    if answer.status_code != 200:
        return None  # still starting
    result = answer.json()["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def wait_for(prometheus_url: str, promql: str, expected: float, folder: Path) -> None:
    deadline = time.monotonic() + 60
    seen = None
    while (seen := query(prometheus_url, promql)) != expected:
        log = (folder / "prometheus.log").read_text()
        assert time.monotonic() < deadline, f"{promql} = {seen}, expected {expected}\n{log[-2000:]}"
        time.sleep(0.5)


# --8<-- [start:prometheus_test]
@pytest.mark.system("Debian's prometheus server, scraping the app served on a port")
@pytest.mark.pattern("OB02")
def test_prometheus_scrapes_the_series_the_test_caused(
    settings: Settings, database_url: str, password_hash: str, tmp_path: Path
) -> None:
    with scratch_database(database_url, "prometheus", migrated=True) as scratch_url:
        caller = bearer(create_access_token(settings, committed_user(scratch_url, password_hash)))
        changes = {"DATABASE_URL": scratch_url, "METRICS_TOKEN": TOKEN}
        app = create_app(load_settings(**{**settings.model_dump(), **changes}))
        with served_in_thread(app) as url, prometheus(url.removeprefix("http://"), tmp_path) as prom:
            cause_and_find(url, prom, caller, tmp_path)


def committed_user(database_url: str, password_hash: str) -> int:
    engine = create_engine(sync_url(database_url), poolclass=NullPool)
    with engine.begin() as conn:
        insert = text("INSERT INTO users (email, hashed_password, name) VALUES (:e, :h, 'S') RETURNING id")
        user_id = conn.execute(insert, {"e": "scraped@example.com", "h": password_hash}).scalar_one()
    engine.dispose()
    return int(user_id)


def cause_and_find(url: str, prom: str, caller: dict[str, str], tmp_path: Path) -> None:
    # 32 predictions at once against PREDICTION_MAX_IN_PROGRESS=1: some are shed with 503.
    with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(32) as threads:
        predict = path("predict")
        answers = list(threads.map(lambda _: client.post(predict, json=DIGIT, headers=caller), range(32)))
        missing = [client.get(path("get_post", post_id=987_654_000 + i)) for i in range(7)]
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 503}, statuses  # some answered, some shed
    assert {answer.status_code for answer in missing} == {404}

    wait_for(prom, 'up{job="fastapi-ml-guide"}', 1, tmp_path)
    wait_for(prom, 'http_requests_shed_total{reason="admission"}', statuses.count(503), tmp_path)
    by_template = 'http_requests_total{route="/api/v1/posts/{post_id}",method="GET",status="404"}'
    wait_for(prom, by_template, 7, tmp_path)
    wait_for(prom, "sum(inference_duration_seconds_count)", statuses.count(200), tmp_path)
    wait_for(prom, "sum(inference_batch_rows_sum)", statuses.count(200), tmp_path)
    every_dashboard_query_answers(prom)
    every_alert_rule_evaluates(prom)


# --8<-- [end:prometheus_test]


def every_dashboard_query_answers(prom: str) -> None:
    """The Grafana dashboard's queries, as Grafana sends them: each is valid PromQL and finds a
    series in what the test caused (a metric renamed in the app would leave a panel empty). A
    rate needs two scrapes of a series: each query is asked again for up to 30 s."""
    deadline = time.monotonic() + 30
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            while True:
                answer = httpx.get(f"{prom}/api/v1/query", params={"query": target["expr"]}, timeout=10)
                assert answer.status_code == 200, (panel["title"], answer.text)  # valid PromQL
                if answer.json()["data"]["result"]:
                    break
                assert time.monotonic() < deadline, (panel["title"], target["expr"])
                time.sleep(0.5)


def every_alert_rule_evaluates(prom: str) -> None:
    """The job queue's alerting rules, loaded by Prometheus and evaluated on the scraped series:
    each is healthy, and the one for workers is pending (no worker runs in this test)."""
    deadline = time.monotonic() + 30
    while True:
        groups = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        states = {name: (rule["health"], rule["state"]) for name, rule in rules.items()}
        if states.get("JobWorkersDown") == ("ok", "pending"):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    assert states == {
        "JobWorkersDown": ("ok", "pending"),  # firing after its `for: 2m`
        "JobQueueStuck": ("ok", "inactive"),
        "JobsFailed": ("ok", "inactive"),
        "JobQueueUnread": ("ok", "inactive"),
    }
