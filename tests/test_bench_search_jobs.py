"""The search and jobs benchmarks still run end to end, on small sizes (their figures are the
machine's: the guide shows a recorded run of `python3 tasks.py bench --name vector-search|jobs`)."""

from __future__ import annotations

import pytest

from bench import jobs, vector_search


@pytest.mark.system("a benchmark run")
@pytest.mark.pattern("ML06")
def test_vector_search_benchmark_compares_hnsw_with_the_exact_scan(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", scratch_url)  # it migrates its own database
    results, server = vector_search.run(sizes=(500,), queries=5)
    assert server.startswith("PostgreSQL ")
    [result] = results
    assert [way.name for way in result.ways][-1] == "exact scan"
    assert all(way.p50_ms > 0 and 0 <= way.recall <= 1 for way in result.ways)
    table = vector_search.report(results, server)
    assert table.count("1.0x") >= 1  # the exact scan is the reference row


@pytest.mark.system("worker processes under a benchmark")
@pytest.mark.pattern("ML07")
def test_jobs_benchmark_runs_one_and_two_workers(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", scratch_url)
    runs, server = jobs.run(jobs=20, setups=((1, 1), (2, 1)))
    assert [(r.workers, r.jobs) for r in runs] == [(1, 20), (2, 20)]
    assert all(r.per_second > 0 for r in runs)
    assert "1.00x" in jobs.report(runs, server)
