"""The Decision 6 benchmark still runs end to end (its figures are not asserted: they are the
machine's; the guide shows a recorded run, and test_blocking.py checks the cause every run)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from mkdocs.config import load_config
from mkdocs.structure.files import Files

from bench import ml_serving
from bench.charts import CHARTS
from bench.decision6 import VARIANTS, parse_wrk, report, run
from bench.ml_serving_apps import PLACEMENTS

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:40000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   700.12ms  300.00ms   1.99s    70.00%
  Latency Distribution
     50%  696.40ms
     75%  900.00ms
     90%    1.20s
     99%    1.57s
  441 requests in 10.01s, 80.00KB read
  Socket errors: connect 0, read 0, write 0, timeout 5
  Non-2xx or 3xx responses: 2
Requests/sec:     44.06
"""


def test_wrk_output_is_parsed() -> None:
    assert parse_wrk(WRK_OUTPUT) == (44.06, 696.4, 1570.0, 7)


@pytest.mark.system("wrk load against served apps")
@pytest.mark.pattern("E03", "D11")
def test_benchmark_runs_every_variant_under_wrk(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", scratch_url)  # it seeds its own database
    results, server = run(seconds=1, connections=8)
    assert server.startswith("PostgreSQL ")
    assert [(r.variant, r.sleep_ms) for r in results] == [(v, s) for v in VARIANTS for s in (0, 20)]
    assert all(r.requests_per_s > 0 for r in results)
    # The corrected variants never time out or fail, even on a busy machine.
    assert all(r.errors == 0 for r in results if r.variant != "async-sync-session")
    table = report(results, 8)
    assert table.count("\n") == len(results) + 2
    assert "1.00x" in table


# --- ML serving (bench/ml_serving.py) -------------------------------------------------------------


def test_wrk_output_is_read_with_its_request_count() -> None:
    run = ml_serving.parse_wrk(WRK_OUTPUT)
    assert (run.requests, run.seconds, run.p50_ms, run.p99_ms, run.errors) == (441, 10.01, 696.4, 1570.0, 7)
    assert run.ok_per_s == pytest.approx(434 / 10.01)


def test_the_shed_requests_are_counted_apart_from_errors() -> None:
    # the batch script's done() prints the 503s it got; wrk counts them as non-2xx responses
    run = ml_serving.parse_wrk(WRK_OUTPUT + "Shed (503): 5\n")
    assert (run.requests, run.errors, run.shed) == (441, 2, 5)
    assert run.ok_per_s == pytest.approx(434 / 10.01)


@pytest.mark.system("wrk load against served apps")
@pytest.mark.pattern("ML02", "ML04")
def test_ml_serving_benchmark_runs_every_placement_and_comparison(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", scratch_url)  # it migrates its own database
    # Each placement once (the second threadpool limit is the same code with another setting).
    variants = [v for v in ml_serving.VARIANTS if v.app_choice or v.env["BENCH_VARIANT"] != "threadpool"]
    results = ml_serving.run(seconds=1, connections=4, log_rows=50, warmup=0, variants=variants, rounds=1)
    assert results.postgres.startswith("PostgreSQL ")
    assert [p.variant for p in results.placement] == [v.name for v in variants]
    assert {v.env["BENCH_VARIANT"] for v in variants} == set(PLACEMENTS)
    # Every placement answered a batch before its slice (the bench checks it); under load the
    # slice is timed, so only the sum is sure to be positive on a busy machine.
    assert sum(p.rows_per_s for p in results.placement) > 0
    assert all(p.health_requests > 0 for p in results.placement)
    assert results.idle_health_p99_ms > 0
    assert [r.rows_per_s > 0 for r in results.requests] == [True, True]
    # The statement count is measured, not assumed: the service writes a batch in one INSERT.
    assert [r.statements for r in results.inserts] == [1, 1, 50]
    table = ml_serving.report(results)
    assert table.count("1.00x") >= 3  # each comparison has its reference row
    assert "Goal (/health p99 < 50 ms" in table


def test_the_chart_is_valid_svg_drawn_from_the_recorded_run() -> None:
    chart = next(c for c in CHARTS if c.target == "assets/charts/ml_serving.svg")
    recorded = json.loads((ROOT / chart.source).read_text())
    root = ElementTree.fromstring(chart.svg(ROOT))
    assert root.tag == f"{SVG}svg"
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    # One bar per recorded figure (and the idle /health), each labelled with the recorded value.
    placement = recorded["placement"]
    assert len(bars) == 2 * len(placement) + 1 + len(recorded["requests"]) + len(recorded["inserts"])
    for p in placement:
        assert f"{p['rows_per_s']:,.0f} rows/s" in texts
    assert all(float(r.get("width", "0")) > 0 for r in bars)
    assert "goal: 50 ms" in texts


def test_the_docs_build_adds_the_chart_to_the_site() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    files = config.plugins.on_files(Files([]), config=config)  # the hooks' step of a build
    chart = files.get_file_from_path("assets/charts/ml_serving.svg")
    assert chart is not None
    assert not chart.is_documentation_page()
    assert ElementTree.fromstring(chart.content_string).tag == f"{SVG}svg"
