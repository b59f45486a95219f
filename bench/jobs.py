"""Background jobs (ML07): "embed post N" jobs per second with 1 and 2 of the app's workers.
Explained on docs/ml/jobs.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from bench import harness as h
from bench.vector_search import corpus

JOBS = 1_000
SETUPS = ((1, 1), (2, 1), (1, 2))  # (workers, jobs at once per worker)


def measure(db: h.Database, workers: int, concurrency: int, jobs: int) -> float:
    """Seconds from queueing `jobs` jobs to the last one's success."""
    from procrastinate import SyncPsycopgConnector

    from example_app.jobs.queue import queue
    from example_app.jobs.tasks import embed_post

    db.sql("TRUNCATE users, posts, procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE")
    h.seed_posts(db, 1, 0)
    insert = (
        "INSERT INTO posts (title, slug, body, author_id) SELECT t, 's', t, 1 FROM unnest(%(t)s::text[]) t"
    )
    db.sql(insert, params={"t": corpus(jobs, seed=3)})
    command = [sys.executable, "-m", "example_app.jobs.worker", "--concurrency", str(concurrency)]
    env, quiet = {**os.environ, **db.env(JOB_POLL_SECONDS="0.2")}, subprocess.DEVNULL
    with ExitStack() as stack:
        for i in range(workers):
            worker = subprocess.Popen(
                [*command, "--name", f"bench-{i}"], cwd=h.ROOT, env=env, stdout=quiet, stderr=quiet
            )
            stack.callback(worker.wait, 60)
            stack.callback(worker.terminate)  # SIGTERM: it finishes its running jobs, then exits
        workers_up = "SELECT count(*) FROM procrastinate_workers"
        h.wait_until(lambda: db.value(workers_up) == workers, 60, f"{workers} workers up")
        app = queue.with_connector(SyncPsycopgConnector(conninfo=db.conninfo))
        with app.open():
            started = time.perf_counter()
            deferred = [
                embed_post.configure(lock=f"post:{i}").job.evolve(task_kwargs={"post_id": i})
                for i in range(1, jobs + 1)
            ]
            app.job_manager.batch_defer_jobs(deferred)
            done = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'embed_post' AND status = %s"
            h.wait_until(lambda: db.value(done, ("succeeded",)) == jobs, 600, f"{jobs} jobs done")
            seconds = time.perf_counter() - started
    if (embedded := db.value("SELECT count(*) FROM posts WHERE embedding IS NOT NULL")) != jobs:
        raise SystemExit(f"bench: {jobs} jobs succeeded but {embedded} posts have an embedding")
    return seconds


def run(jobs: int = JOBS, setups: Sequence[tuple[int, int]] = SETUPS) -> dict[str, Any]:
    with h.database() as db:
        runs = [
            {"workers": w, "concurrency": c, "jobs": jobs, "seconds": measure(db, w, c, jobs)}
            for w, c in setups
        ]
    return {"postgres": db.postgres, "runs": [{**r, "per_second": r["jobs"] / r["seconds"]} for r in runs]}


def report(data: dict[str, Any]) -> str:
    runs, first = data["runs"], data["runs"][0]["per_second"]
    spec = ["workers", "jobs at once each", "jobs", "seconds:{:.2f}"]
    rows = [(r["workers"], r["concurrency"], r["jobs"], r["seconds"], r["per_second"]) for r in runs]
    table = h.columns([*spec, "jobs/s:{:.1f}", "vs 1"], [(*r, h.ratio(r[-1], first)) for r in rows])
    return "\n".join(["Background jobs: embed_post (read the post, embed it, write the vector)", *table])


main = h.scenario("jobs", run, report)
