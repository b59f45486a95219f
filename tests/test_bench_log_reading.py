"""The log-reading benchmark still runs end to end, small (its figures are the machine's: the guide
shows a recorded run of `python3 tasks.py bench --name log-reading` at 100,000 rows)."""

from __future__ import annotations

import pytest

from bench import log_reading


@pytest.mark.system("a benchmark run against served apps")
@pytest.mark.pattern("ML05", "ML08")
def test_log_reading_benchmark_compares_keyset_with_offset_and_the_stream_with_one_body(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", scratch_url)  # it migrates and fills its own database
    results = log_reading.run(rows=2_000, seconds=1, connections=2, depths=(0.9,), rounds=1, warmup=0)
    assert results.postgres.startswith("PostgreSQL ")
    # Both pages were checked to hold the same rows before wrk asked for them.
    ways = ("keyset (after=)", "OFFSET (skip=)")
    assert [(r.depth, r.way) for r in results.pages] == [(1_800, way) for way in ways]
    assert all(r.requests_per_s > 0 and r.errors == 0 for r in results.pages)
    # Both exports sent every row as the same bytes (checked by the run), from servers of their own,
    # whose memory was sampled meanwhile.
    assert [e.way for e in results.exports] == list(log_reading.EXPORTS)
    for export in results.exports:
        [run] = export.runs
        assert run.lines == 2_000
        assert 0 < run.first_byte_s <= run.whole_s
        assert export.rss_before > 0
        assert run.peak >= run.peak_early > 0
    table = log_reading.report(results)
    assert "1.00x" in table  # OFFSET is the pages' reference row
    assert "built whole / streamed: first byte " in table
