"""A worker process: `python -m example_app.jobs.worker` (what `python3 tasks.py worker` runs).

It takes jobs from the queue in PostgreSQL until SIGINT/SIGTERM (then it finishes the jobs it
is running and stops). Run as many as needed, on as many machines: they share the queue
through the database, and each job goes to exactly one of them. A database that goes away
and comes back (a restart, a failover, a network blip) does not end it: it takes jobs again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from procrastinate.app import WorkerOptions

from example_app.core.backoff import Backoff
from example_app.core.config import Settings, get_settings
from example_app.core.database import create_engine, create_sessionmaker
from example_app.core.log_format import configure as configure_logging
from example_app.jobs.queue import queue, worker_connector
from example_app.jobs.tasks import WorkerResources
from example_app.ml.embedding import shared_embedder

log = logging.getLogger(__name__)


# --8<-- [start:run_worker]
async def run_worker(settings: Settings, *, concurrency: int = 1, name: str = "worker") -> None:
    shared_embedder()  # the model is loaded before the first job, once per process
    engine = create_engine(settings)  # the jobs' own sessions, as the app's
    resources = WorkerResources(settings, engine, create_sessionmaker(engine))
    options = WorkerOptions(
        name=name,
        concurrency=concurrency,  # jobs at once in this process
        fetch_job_polling_interval=settings.JOB_POLL_SECONDS,  # NOTIFY wakes it sooner
        update_heartbeat_interval=settings.JOB_HEARTBEAT_SECONDS,
        stalled_worker_timeout=settings.JOB_STALLED_SECONDS,
        shutdown_graceful_timeout=settings.JOB_SHUTDOWN_SECONDS,
        additional_context={"resources": resources},  # each job's context has it
        install_signal_handlers=False,  # the signals stop keep_taking_jobs, not one run of it
    )

    async def take_jobs() -> None:
        connector = worker_connector(settings)  # a new pool each run: nothing of a lost one is kept
        with queue.replace_connector(connector):
            try:
                async with queue.open_async():
                    await queue.run_worker_async(**options)
            finally:
                await connector.close_async()  # also when opening failed, or was cancelled

    try:
        await keep_taking_jobs(take_jobs, Backoff(first=1.0, cap=30.0, healthy=60.0))
    finally:
        await engine.dispose()


# --8<-- [end:run_worker]


# --8<-- [start:keep_taking_jobs]
async def keep_taking_jobs(take_jobs: Callable[[], Coroutine[Any, Any, None]], backoff: Backoff) -> None:
    """Run `take_jobs()` again each time it ends, until SIGINT or SIGTERM.

    procrastinate stops a worker when one of its side tasks fails (the LISTEN connection or the
    heartbeat lost the database): the running jobs finish, then `run_worker_async` returns. A
    database that cannot be reached makes it raise instead. Either way the queue is still
    there, so the worker waits (`backoff`) and takes jobs again, one log line each time.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        while not stop.is_set():
            started = loop.time()
            run, stopping = asyncio.create_task(take_jobs()), asyncio.create_task(stop.wait())
            await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                run.cancel()  # procrastinate's graceful stop: the running jobs finish first
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                return
            wait = backoff.after(loop.time() - started)
            log.warning("job worker stopped (%s); taking jobs again in %g s", _reason(run), wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _reason(run: asyncio.Task[None]) -> str:
    if (error := run.exception()) is None:
        return "a side task failed, see above"  # procrastinate logged which, and why
    cause = error.__cause__ or error  # procrastinate's ConnectorException wraps psycopg's error
    return f"{type(cause).__name__}: {next(iter(str(cause).strip().splitlines()), '')}"


# --8<-- [end:keep_taking_jobs]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs at once (default 1)")
    parser.add_argument("--name", default="worker", help="the worker's name in its log lines")
    args = parser.parse_args(argv)
    configure_logging()  # the app's format: text, or JSON lines with LOG_FORMAT=json
    asyncio.run(run_worker(get_settings(), concurrency=args.concurrency, name=args.name))


if __name__ == "__main__":
    main()
