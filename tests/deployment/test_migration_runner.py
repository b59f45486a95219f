"""DP03: instances that start together run `alembic upgrade head` once, not once each."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.migrations.schema import head
from tests.migrations.workspace import ALEMBIC
from tests.support import ROOT, sync_url

INSTANCES = 3


def migration_lock() -> int:
    """alembic/env.py's MIGRATION_LOCK (env.py runs inside alembic; it is not importable)."""
    found = re.search(r"^MIGRATION_LOCK = ([\d_]+)$", (ROOT / "alembic" / "env.py").read_text(), re.M)
    assert found is not None
    return int(found.group(1))


def connected(conn: psycopg.Connection[Any], database: str) -> int:
    """Other sessions on `database`: an upgrade connected there can only wait for the lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    ).fetchone()
    assert row is not None
    return int(row[0])


# --8<-- [start:three_at_once]
@pytest.mark.pattern("DP03")
def test_three_instances_migrate_once(scratch_url: str) -> None:
    key = migration_lock()
    with psycopg.connect(sync_url(scratch_url).replace("+psycopg", ""), autocommit=True) as holder:
        # Hold the lock first, so that all three are certainly queued at the same time.
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        env = {**os.environ, "DATABASE_URL": scratch_url}
        upgrades = [
            subprocess.Popen(
                [str(ALEMBIC), "upgrade", "head"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
            )
            for _ in range(INSTANCES)
        ]
        deadline = time.monotonic() + 60
        while connected(holder, make_url(scratch_url).database or "") < INSTANCES:
            assert time.monotonic() < deadline, "the upgrades did not all queue on the lock"
            assert all(p.poll() is None for p in upgrades), "an upgrade ended without waiting"
            time.sleep(0.1)
        holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
        logs = [p.communicate(timeout=120)[1] for p in upgrades]

    assert [p.returncode for p in upgrades] == [0] * INSTANCES, logs  # all three start
    applied = [log for log in logs if "Running upgrade" in log]
    assert len(applied) == 1, logs  # exactly one ran the revisions; the others found head
    engine = create_engine(sync_url(scratch_url), poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head()
    engine.dispose()


# --8<-- [end:three_at_once]
