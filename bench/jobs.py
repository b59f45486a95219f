"""Background jobs, measured (ML07): "embed post N" jobs per second with 1 and 2 workers.

Each run queues `jobs` embedding jobs (one per post, posts written beforehand without their
embeddings) in one transaction while the workers (`python -m example_app.jobs.worker`, the
app's own, one job at a time each) are up and idle, and times until the last job succeeded.
Every job loads its post, embeds the text in a thread and writes the vector: the app's real
task, on a scratch database (BENCH_DATABASE_URL, else a throwaway server), migrated by Alembic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.vector_search import conninfo, corpus, migrate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RECORD = RESULTS / "jobs.txt"

JOBS = 1_000
SETUPS = ((1, 1), (2, 1), (1, 2))  # (workers, jobs at once per worker)


@dataclass(frozen=True)
class Run:
    workers: int
    concurrency: int
    jobs: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.jobs / self.seconds


@contextmanager
def _worker(database_url: str, name: str, concurrency: int) -> Iterator[None]:
    env = {**os.environ, "DATABASE_URL": database_url, "JOB_POLL_SECONDS": "0.2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "example_app.jobs.worker", "--name", name, "--concurrency", str(concurrency)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(conn: psycopg.Connection[tuple[object, ...]], sql: str, until: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(sql).fetchone()
        if row is not None and row[0] == until:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {sql!r} to reach {until}")
        time.sleep(0.02)


def measure(database_url: str, workers: int, concurrency: int, jobs: int) -> Run:
    from procrastinate import SyncPsycopgConnector

    from example_app.jobs.queue import queue
    from example_app.jobs.tasks import embed_post

    info = conninfo(database_url)
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE users, posts, procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE"
        )
        author = conn.execute(
            "INSERT INTO users (email, hashed_password, name) "
            "VALUES ('jobs@example.com', 'x', 'J') RETURNING id"
        ).fetchone()
        assert author is not None
        with conn.cursor().copy("COPY posts (title, slug, body, author_id) FROM STDIN") as copy:
            for text in corpus(jobs, seed=3):
                copy.write_row((text, "s", text, author[0]))
        with ExitStack() as stack:
            for i in range(workers):
                stack.enter_context(_worker(database_url, f"bench-{i}", concurrency))
            _wait(conn, "SELECT count(*) FROM procrastinate_workers", workers, timeout=60)
            app = queue.with_connector(SyncPsycopgConnector(conninfo=info))
            with app.open():
                started = time.perf_counter()
                deferrers = [embed_post.configure(lock=f"post:{i}") for i in range(1, jobs + 1)]
                app.job_manager.batch_defer_jobs(
                    [d.job.evolve(task_kwargs={"post_id": i}) for i, d in enumerate(deferrers, start=1)]
                )
                _wait(
                    conn,
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE task_name = 'embed_post' AND status = 'succeeded'",
                    jobs,
                    timeout=600,
                )
                seconds = time.perf_counter() - started
        embedded = conn.execute("SELECT count(*) FROM posts WHERE embedding IS NOT NULL").fetchone()
        if embedded is None or embedded[0] != jobs:
            raise RuntimeError(f"{jobs} jobs succeeded but {embedded} posts have an embedding")
    return Run(workers, concurrency, jobs, seconds)


def run(jobs: int = JOBS, setups: Sequence[tuple[int, int]] = SETUPS) -> tuple[list[Run], str]:
    from devtools.postgres_provider import provide

    with provide("BENCH_DATABASE_URL", dbname="bench") as server:
        os.environ.setdefault("DATABASE_URL", server.url)  # the app's modules read their settings
        migrate(server.url)
        runs = [measure(server.url, workers, concurrency, jobs) for workers, concurrency in setups]
        with psycopg.connect(conninfo(server.url), autocommit=True) as conn:
            version = conn.execute("SELECT current_setting('server_version')").fetchone()
            conn.execute("TRUNCATE users, posts, procrastinate_jobs, procrastinate_workers CASCADE")
    return runs, f"PostgreSQL {version[0] if version else '?'}"


def report(runs: list[Run], server: str) -> str:
    base = runs[0].per_second
    lines = [
        f"Background jobs: embed_post (read the post, embed it, write the vector); {server}",
        f"{'workers':>7} {'jobs at once each':>18} {'jobs':>6} {'seconds':>8} {'jobs/s':>8} {'vs 1':>6}",
    ]
    for r in runs:
        lines.append(
            f"{r.workers:>7} {r.concurrency:>18} {r.jobs:>6} {r.seconds:8.2f} {r.per_second:8.1f} "
            f"{r.per_second / base:5.2f}x"
        )
    return "\n".join(lines)


def main(seconds: int = 0, connections: int = 0, record: bool = False) -> None:
    """`python3 tasks.py bench --name jobs` (seconds and connections do not apply)."""
    runs, server = run()
    table = report(runs, server)
    print(table)
    if record:
        RESULTS.mkdir(exist_ok=True)
        RECORD.write_text(table + "\n")
