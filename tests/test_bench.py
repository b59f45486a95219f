"""The Decision 6 benchmark still runs end to end (its figures are not asserted: they are the
machine's; the guide shows a recorded run, and test_blocking.py checks the cause every run)."""

from __future__ import annotations

import pytest

from bench.decision6 import VARIANTS, parse_wrk, report, run

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
