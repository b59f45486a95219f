"""How the job queue is doing, read from procrastinate's tables in one statement: readiness
reports it, /metrics exposes it (OB01, OB02).

The workers run in processes of their own, anywhere; what they did is in the database, so any
instance of the app can tell, at the moment it is asked, without counting anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import get_args

from sqlalchemy import Float, bindparam, text
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.schemas.job import JobStatus


# --8<-- [start:queue_health]
@dataclass(frozen=True)
class QueueHealth:
    oldest_todo_seconds: float | None  # the longest wait of a job due to run; None: none waits
    heartbeat_seconds: float | None  # the age of the freshest worker heartbeat; None: no worker
    workers_alive: int  # workers whose heartbeat is younger than JOB_STALLED_SECONDS
    jobs: dict[JobStatus, int]  # by status, 0 included; empty unless counted (the metrics)


# The oldest job due to run is the head of the queue: procrastinate takes the lowest id first
# (all priorities are equal here). It waits since it was last queued, or since its scheduled time
# if that is later (a retry after its backoff); a job scheduled for later does not wait yet. The
# jobs table keeps no time of queueing: procrastinate's events do, found by their job_id index.
WAITS = """
SELECT
    (SELECT extract(epoch FROM now() - greatest(head.scheduled_at, queued.at))
       FROM (SELECT id, scheduled_at FROM procrastinate_jobs
              WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())
              ORDER BY id LIMIT 1) AS head
       CROSS JOIN LATERAL (
           SELECT max(event.at) AS at FROM procrastinate_events AS event
            WHERE event.job_id = head.id
              AND event.type::text IN ('deferred', 'deferred_for_retry', 'retried')
       ) AS queued
    ) AS oldest_todo_seconds,
    (SELECT extract(epoch FROM now() - max(last_heartbeat)) FROM procrastinate_workers) AS heartbeat_seconds,
    (SELECT count(*) FROM procrastinate_workers
      WHERE last_heartbeat > now() - make_interval(secs => :stalled)) AS workers_alive
"""
# Every job in the table: a scan, which the metrics pay at each scrape and readiness does not.
COUNTS = """
SELECT
    count(*) FILTER (WHERE status = 'todo') AS todo,
    count(*) FILTER (WHERE status = 'doing') AS doing,
    count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE status = 'aborted') AS aborted
FROM procrastinate_jobs
"""
_STALLED = bindparam("stalled", type_=Float)
WAITS_ONLY = text(WAITS).bindparams(_STALLED)
WAITS_AND_COUNTS = text(f"SELECT * FROM ({WAITS}) AS waits, ({COUNTS}) AS counts").bindparams(_STALLED)


async def read_queue_health(session: AsyncSession, stalled_seconds: float, *, counts: bool) -> QueueHealth:
    """The queue now, in one statement: its waits, its workers' heartbeats, and (`counts`) its
    jobs by status."""
    statement = WAITS_AND_COUNTS if counts else WAITS_ONLY
    row = (await (await session.connection()).execute(statement, {"stalled": stalled_seconds})).one()
    return QueueHealth(
        oldest_todo_seconds=_seconds(row.oldest_todo_seconds),
        heartbeat_seconds=_seconds(row.heartbeat_seconds),
        workers_alive=row.workers_alive,
        jobs={status: getattr(row, status) for status in STATUSES} if counts else {},
    )


# --8<-- [end:queue_health]

STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)


def _seconds(value: Decimal | None) -> float | None:
    return None if value is None else float(value)  # extract(epoch ...) is a numeric
