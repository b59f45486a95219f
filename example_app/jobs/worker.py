"""A worker process: `python -m example_app.jobs.worker` (what `python3 tasks.py worker` runs).

It takes jobs from the queue in PostgreSQL until SIGINT/SIGTERM (then it finishes the jobs it
is running and stops). Run as many as needed, on as many machines: they share the queue
through the database, and each job goes to exactly one of them.
"""

from __future__ import annotations

import argparse
import asyncio

from example_app.core.config import Settings, get_settings
from example_app.core.database import create_engine, create_sessionmaker
from example_app.core.log_format import configure as configure_logging
from example_app.jobs.queue import queue, worker_connector
from example_app.jobs.tasks import WorkerResources
from example_app.ml.embedding import shared_embedder


# --8<-- [start:run_worker]
async def run_worker(settings: Settings, *, concurrency: int = 1, name: str = "worker") -> None:
    shared_embedder()  # the model is loaded before the first job, once per process
    engine = create_engine(settings)  # the jobs' own sessions, as the app's
    resources = WorkerResources(settings, engine, create_sessionmaker(engine))
    try:
        with queue.replace_connector(worker_connector(settings)):
            async with queue.open_async():
                await queue.run_worker_async(
                    name=name,
                    concurrency=concurrency,  # jobs at once in this process
                    fetch_job_polling_interval=settings.JOB_POLL_SECONDS,  # NOTIFY wakes it sooner
                    update_heartbeat_interval=settings.JOB_HEARTBEAT_SECONDS,
                    stalled_worker_timeout=settings.JOB_STALLED_SECONDS,
                    shutdown_graceful_timeout=settings.JOB_SHUTDOWN_SECONDS,
                    additional_context={"resources": resources},  # each job's context has it
                )
    finally:
        await engine.dispose()


# --8<-- [end:run_worker]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs at once (default 1)")
    parser.add_argument("--name", default="worker", help="the worker's name in its log lines")
    args = parser.parse_args(argv)
    configure_logging()  # the app's format: text, or JSON lines with LOG_FORMAT=json
    asyncio.run(run_worker(get_settings(), concurrency=args.concurrency, name=args.name))


if __name__ == "__main__":
    main()
