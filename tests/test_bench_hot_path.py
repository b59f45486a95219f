"""The hot-path benchmark (bench/hot_path.py) runs end to end, briefly (its figures are the
machine's, and are not asserted: the guide shows a recorded run), and its chart is drawn from
the recorded output. The round trips it depends on are asserted in tests/test_hot_path.py."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from mkdocs.config import load_config
from mkdocs.structure.files import Files

from bench import hot_path
from bench.charts import CHARTS

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"
# Each kind of server once: the small apps, the app, and the app with every lever put back.
SMOKE = ("original", "def-sync", "asyncsession", "raw", "before", "app")


@pytest.mark.system("wrk load against served apps")
@pytest.mark.pattern("PF02", "PF04")
def test_the_benchmark_serves_the_app_beside_the_same_sql(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", scratch_url)  # it migrates and seeds its own database
    variants = [v for v in hot_path.VARIANTS if v.key in SMOKE]
    results = hot_path.run(
        seconds=1,
        connections=8,
        rounds=1,
        warmup=0,
        variants=variants,
        pf04_seconds=2,
        serialization_repeat=20,
    )
    assert results.postgres.startswith("PostgreSQL ")
    # The small apps run the statement the app sends, and the app sends one per read (PF01).
    assert results.round_trips == {"get_post": 1, "list_posts": 1, "get_user": 1}
    measured = {(m.variant, m.route) for m in results.measures}
    assert measured == {(v.key, route) for v in variants for route in v.routes}
    assert all(m.requests_per_s > 0 and m.cpu_ms > 0 for m in results.measures)
    # Every server answered every request (the original pattern may time out on a busy machine).
    assert all(m.errors == 0 for m in results.measures if m.variant != "original")
    # PF04: the cheap request was answered throughout the slow load, and alone.
    loaded, idle = results.loaded, results.idle
    assert loaded is not None
    assert idle is not None
    assert (loaded.requests > 0, loaded.errors, results.slow_errors, idle.requests > 0) == (True, 0, 0, True)
    paced = results.loaded_paced  # the same connections, pausing between requests
    assert paced is not None
    assert (paced.requests > 0, paced.errors) == (True, 0)
    assert 0 < results.paced_per_s < results.slow_per_s
    assert all(us > 0 for ways in results.serialization_us.values() for us in ways.values())
    table = hot_path.report(results)
    assert "Goal (GET by id at least 0.5x raw asyncpg)" in table
    assert "Goal (cheap request p99 under 50 ms" in table
    for route in ("by-id", "list", "auth"):
        assert hot_path.ROUTES[route].label in table


def test_the_chart_is_valid_svg_drawn_from_the_recorded_run() -> None:
    chart = next(c for c in CHARTS if c.target == "assets/charts/hot_path.svg")
    recorded = json.loads((ROOT / chart.source).read_text())
    root = ElementTree.fromstring(chart.svg(ROOT))
    assert root.tag == f"{SVG}svg"
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    # The ladder and raw asyncpg, the three routes' ratios, the cheap request loaded (with each
    # pool queue, and paced) and alone.
    assert len(bars) == len(recorded["ladder"]) + 1 + 3 + 4
    for m in recorded["measures"]:
        if m["route"] == "by-id" and m["variant"] in (*recorded["ladder"], "raw"):
            assert f"{m['requests_per_s']:,.0f} req/s" in texts
    assert all(float(r.get("width", "0")) > 0 for r in bars)
    assert "goal: 50 ms" in texts


def test_the_docs_build_adds_the_chart_to_the_site() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    files = config.plugins.on_files(Files([]), config=config)  # the hooks' step of a build
    chart = files.get_file_from_path("assets/charts/hot_path.svg")
    assert chart is not None
    assert ElementTree.fromstring(chart.content_string).tag == f"{SVG}svg"
