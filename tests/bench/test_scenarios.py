"""Every benchmark still runs end to end, briefly (full tier). Their figures are the machine's and
are not asserted: the guide shows recorded runs (bench/results/), checked in test_records.py."""

from __future__ import annotations

import json
import os

import psycopg
import pytest

from bench import (
    decision6,
    drift,
    harness,
    hot_path,
    jobs,
    log_reading,
    ml_serving,
    model_artifact,
    observability,
    profile,
    scale_out,
    shadow,
    vector_search,
)

pytestmark = pytest.mark.system("a benchmark run: wrk load against served apps")


@pytest.fixture(autouse=True)
def scratch(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", scratch_url)  # each run migrates and seeds its own


@pytest.mark.pattern("E03", "D11")
def test_decision6_serves_the_query_four_ways() -> None:
    data = decision6.run(seconds=1, connections=8, warmup=0)
    measures = harness.measured(data)
    assert data["postgres"].startswith("PostgreSQL ")
    assert [(m.variant, m.load) for m in measures] == [
        (p, k) for p in decision6.PATTERNS for k in decision6.LOADS
    ]
    assert all(m.requests_per_s > 0 for m in measures)
    # The corrected patterns never time out or fail, even on a busy machine.
    assert all(m.errors == 0 for m in measures if m.variant != "async-sync-session")


@pytest.mark.pattern("PF02", "PF04")
def test_hot_path_serves_the_app_beside_its_floors_with_the_same_answers() -> None:
    # Each kind of server once; the run checks that every one answers each read with the app's body.
    only = ("app", "core", "driver", "raw-asyncpg", "def-sync-session", "app on asyncio + h11")
    data = hot_path.run(seconds=1, connections=8, rounds=1, warmup=0, only=only)
    served = {(m["variant"], m["load"]) for m in data["measures"]}
    chosen = [v for v in hot_path.variants([]) if v.name in only]
    assert served == {(v.name, load) for v in chosen for load in v.loads or hot_path.ALL}
    assert all(m["requests_per_s"] > 0 and m["cpu_ms"] > 0 and m["errors"] == 0 for m in data["measures"])
    assert [line.split(":")[0] for line in data["goals"]] == [
        f"Goal ({load}" for load in ("by-id", "list") for _ in hot_path.GOALS
    ]
    pf04 = data["pf04"]  # the cheap request answered beside the slow load, paced, and alone
    assert all(pf04[k]["requests"] > 0 and pf04[k]["errors"] == 0 for k in ("loaded", "paced", "alone"))
    assert pf04["loaded"]["slow_per_s"] > pf04["paced"]["slow_per_s"] > 0
    assert "Goal (cheap request p99 under 50 ms" in hot_path.report(data)


@pytest.mark.pattern("PF02")
def test_the_profile_splits_each_servers_cpu_by_layer() -> None:
    data = profile.run(seconds=2, connections=4)
    app, core = data["layers"]["app"], data["layers"]["core"]
    assert app["the app's middleware"] > 0
    assert "the app's middleware" not in core
    assert core["the floor's route"] > 0
    assert app[profile.ROUTING] > core[profile.ROUTING] > 0  # the app has many more routes to try
    assert app["SQLAlchemy: Core, engine, results"] > 0 < core["SQLAlchemy: Core, engine, results"]


@pytest.mark.pattern("ML02", "ML04", "LC06")
def test_ml_serving_runs_every_placement_and_comparison() -> None:
    data = ml_serving.run(seconds=1, connections=4, rounds=1, warmup=0, log_rows=50)
    assert [p["variant"] for p in data["placement"]] == [v.name for v in ml_serving.VARIANTS]
    # Every placement answered a batch before it was loaded (the run checks it); under load a
    # slice is timed, so only the sum is sure to be positive on a busy machine.
    assert sum(p["rows_per_s"] for p in data["placement"]) > 0
    assert all(p["health_requests"] > 0 for p in data["placement"])
    assert [r["rows_per_s"] > 0 for r in data["requests"]] == [True, True]
    # The statement count is measured, not assumed: the service writes a batch in one INSERT.
    assert [r["statements"] for r in data["inserts"]] == [1, 1, 50]
    assert "Goal (/health p99 < 50 ms" in ml_serving.report(data)
    # Micro-batching: single predictions with it off and on, the same run, against the 3x goal.
    assert [p["variant"] for p in data["singles"]] == [v.name for v in ml_serving.SINGLE_VARIANTS]
    assert [p["baseline"] for p in data["singles"]] == [True] + [False] * 6
    assert [p["floor"] for p in data["singles"]] == [False] * 6 + [True]  # no model, no log
    assert sum(p["ok_per_s"] for p in data["singles"]) > 0
    assert all(p["health_requests"] > 0 for p in data["singles"])
    assert "Goal (single predictions/s micro-batched >= 3x not batched)" in ml_serving.report(data)
    assert "Ceiling: the floor (the route with neither model nor log) answers" in ml_serving.report(data)


@pytest.mark.pattern("LC03")
def test_shadow_serves_every_prediction_shadowed_and_records_the_report() -> None:
    data = shadow.run(limit=40)
    [pair] = data["report"]["pairs"]
    assert (pair["production_version"], pair["candidate_version"], pair["rows"]) == ("1.0.0", "2.0.0", 40)
    assert 0 <= pair["agreeing"] <= 40
    assert "shadow-report?last=40" in shadow.table(data)


def test_scale_out_runs_each_configuration_and_each_client_edits_its_own_post() -> None:
    data = scale_out.run(seconds=1, connections=4, rounds=1, warmup=0)
    assert [(m["variant"], m["load"]) for m in data["measures"]] == [
        (f"{n} worker{'s' if n > 1 else ''}, {how}", load)
        for how in ("direct", "through PgBouncer")
        for n in (1, 2)
        for load in ("read", "write")
    ]
    assert all(m["ok_per_s"] > 0 and m["errors"] == 0 for m in data["measures"])


def test_each_client_of_the_scale_out_write_load_owns_the_post_it_edits(scratch_url: str) -> None:
    db = harness.Database(scratch_url, "")
    harness.migrate(scratch_url)
    harness.seed_posts(db, scale_out.USERS, scale_out.POSTS)
    pairs = scale_out.owned_posts()
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute("SELECT id, author_id FROM posts WHERE id = ANY(%s)", ([p for _, p in pairs],))
        authors: dict[int, int] = dict(rows.fetchall())
    assert len(pairs) == scale_out.CLIENTS
    assert [(authors[post], post) for _, post in pairs] == pairs


@pytest.mark.pattern("ML05", "ML08")
def test_log_reading_compares_keyset_with_offset_and_the_stream_with_one_body() -> None:
    data = log_reading.run(rows=2_000, seconds=1, connections=2, depths=(0.9,), rounds=1, warmup=0)
    # Both pages were checked to hold the same rows before wrk asked for them.
    assert sorted((r["depth"], r["way"]) for r in data["pages"]) == [
        (1_800, "OFFSET (skip=)"),
        (1_800, "keyset (after=)"),
    ]
    assert all(r["requests_per_s"] > 0 and r["errors"] == 0 for r in data["pages"])
    # Both exports sent the same bytes (checked by the run), their servers' memory sampled meanwhile.
    assert [e["way"] for e in data["exports"]] == list(log_reading.EXPORTS)
    for export in data["exports"]:
        assert 0 < export["first_byte_s"] <= export["whole_s"]
        assert export["rss_before_mib"] > 0
        assert len(export["series"]) > 1
    assert "built whole / streamed: first byte " in log_reading.report(data)


@pytest.mark.pattern("ML06")
def test_vector_search_compares_hnsw_with_the_exact_scan() -> None:
    data = vector_search.run(sizes=(500,), queries=5)
    [size] = data["sizes"]
    assert size["ways"][-1]["name"] == "exact scan"
    assert all(w["p50_ms"] > 0 and 0 <= w["recall"] <= 1 for w in size["ways"])
    assert "1.0x" in vector_search.report(data)  # the exact scan is the reference row


@pytest.mark.pattern("ML07")
def test_jobs_runs_one_and_two_workers() -> None:
    data = jobs.run(jobs=20, setups=((1, 1), (2, 1)))
    assert [(r["workers"], r["jobs"]) for r in data["runs"]] == [(1, 20), (2, 20)]
    assert all(r["per_second"] > 0 for r in data["runs"])
    assert "1.00x" in jobs.report(data)


def test_model_artifact_compares_onnx_with_joblib() -> None:
    data = model_artifact.measure(scale=0.01)
    assert {(r["variant"], r["batch"]) for r in data["latency"]} == {
        (v, n)
        for v in ("onnx, 1 thread", "onnx, 2 threads", "sklearn via joblib, 1 thread")
        for n in (1, 32, 1000)
    }
    assert all(r["seconds"] > 0 for r in data["latency"])
    assert data["sizes"]["joblib"] > data["sizes"]["onnx"] > 0
    assert json.loads(json.dumps(data)) == data  # the record's JSON holds it as it is


def test_drift_reports_each_scenario_and_times_the_largest_report() -> None:
    data = drift.run()
    assert [s["name"] for s in data["scenarios"]] == list(drift.SCENARIOS)
    assert data["scenarios"][0]["status"] == "stable"  # the held-out split, unshifted
    assert all(len(s["feature_psi"]) == 64 for s in data["scenarios"])
    assert data["timed_median_ms"] > 0
    assert "A report over" in drift.report(data)


@pytest.mark.pattern("OB07")
def test_observability_serves_the_app_with_and_without_metrics_and_traces() -> None:
    data = observability.run(seconds=1, connections=8, rounds=1, warmup=0)
    served = {(m["variant"], m["load"]) for m in data["measures"]}
    assert served == {(v.name, load) for v in observability.variants("") for load in ("by-id", "predict")}
    assert all(m["requests_per_s"] > 0 and m["errors"] == 0 for m in data["measures"])
    assert data["spans_exported"]  # the traced variants sent their spans to the sink
    assert data["pinned"] == (len(os.sched_getaffinity(0)) >= 2)  # each server on a core of its own
    assert len(observability.verdicts(harness.measured(data))) == 4
