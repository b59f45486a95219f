"""HD06: the soak runs end to end on a short load, and leaves nothing behind.

`python3 tasks.py bench --name soak` runs it for 60 s at 64 connections; the guide shows a
recorded run. Here it runs for a few seconds in a process of its own (the app inside it reads
its settings at import), on a scratch database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.system("wrk load against a served app")


@pytest.mark.pattern("HD06")
def test_a_short_soak_has_no_errors_and_leaves_no_connection_or_descriptor(scratch_url: str) -> None:
    env = {**os.environ, "BENCH_DATABASE_URL": scratch_url}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "4", "16", "1"],  # seconds, connections, warm-up
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((ROOT / "artifacts" / "bench-soak.json").read_text())  # what the run wrote
    before, settled = result["before"], result["settled"]
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert settled["pool_checked_out"] == 0  # every connection back in the pool
    assert settled["pg_connections"] <= before["pool_size"]  # overflow closed, nothing stuck open
    assert settled["pg_active"] == 0
    assert settled["open_fds"] <= before["open_fds"] + 2
    assert settled["rss_mib"] - before["rss_mib"] < 30
