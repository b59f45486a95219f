"""Shadow predictions (LC03): the `candidate` version answers a share of production's requests
again, after the caller has its answer; the answers are logged, never returned.

Off the request's path by construction. The route hands the work over in a Starlette background
task, which runs after the response is sent and only puts it on a bounded queue (no await, no
inference, no database). One worker task per process takes it from there: a background task
would compute inside the request's ASGI call, holding its admission slot (api/admission.py) and
making every shadow a request that counts against PREDICTION_MAX_IN_PROGRESS. The queue is
bounded in rows, so a candidate slower than production drops shadows instead of piling them up;
the worker computes only when an inference slot is free and no request waits for one
(Inference.predict_if_free), so a shadow never takes a slot a request wants; one that finds none
for MAX_WAIT_SECONDS is dropped. Every outcome is counted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter as PrometheusCounter
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.ml.artifact import LoadedModel
from example_app.ml.inference import Inference
from example_app.models import PredictionLog

log = logging.getLogger(__name__)

MAX_PENDING_ROWS = 2_000  # queued for shadowing per process: about 1 MB of inputs at most
MAX_WAIT_SECONDS = 1.0  # a shadow that finds no free inference slot for this long is dropped
BUSY_RETRY_SECONDS = 0.002  # how often a waiting shadow looks for a free slot
# The worker collects shadows this long before it writes them: one INSERT and one commit for all
# that came in, not one per request beside the next request's own.
COLLECT_SECONDS = 0.05

# What became of a shadow: logged, or why not.
LOGGED, QUEUE_FULL, BUSY, FAILED, SHUTDOWN = "logged", "queue_full", "busy", "failed", "shutdown"


@dataclass(frozen=True)
class ShadowWork:
    candidate: LoadedModel
    production_ids: Sequence[int]  # the production rows, one per input row
    rows: Sequence[Sequence[float]]
    request_id: str | None
    queued_at: float = field(default_factory=time.monotonic)


# --8<-- [start:runner]
class ShadowRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        inference: Inference,
        outcomes: PrometheusCounter | None = None,  # the app's metrics, by outcome
        *,
        max_pending_rows: int = MAX_PENDING_ROWS,
        max_wait: float = MAX_WAIT_SECONDS,
        collect_seconds: float = COLLECT_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.inference = inference
        self.outcomes = outcomes
        self.max_pending_rows = max_pending_rows
        self.max_wait = max_wait
        self.collect_seconds = collect_seconds
        self.counts: Counter[str] = Counter()  # this process's outcomes, in rows
        self._queue: asyncio.Queue[ShadowWork] = asyncio.Queue()
        self._pending_rows = 0
        self._failing: set[str] = set()  # candidates whose failure is logged already (by sha256)

    @staticmethod
    def sampled(percent: float) -> bool:
        """Whether this request is shadowed when `percent` % of them are (not sticky: a share of
        traffic, not of callers)."""
        return percent > 0 and random.random() * 100 < percent

    def offer(self, work: ShadowWork) -> None:
        """Queue `work`, or drop it when the queue holds MAX_PENDING_ROWS already. Never waits."""
        if self._pending_rows + len(work.rows) > self.max_pending_rows:
            self._count(QUEUE_FULL, len(work.rows))
            return
        self._pending_rows += len(work.rows)
        self._queue.put_nowait(work)

    async def run(self) -> None:
        """The worker, until cancelled (at shutdown): what arrived within COLLECT_SECONDS of the
        first shadow, each predicted on its own (its latency is one request's, as production's
        is), then one INSERT and one commit for all of them."""
        try:
            while True:
                collected = [await self._queue.get()]
                await asyncio.sleep(self.collect_seconds)
                while not self._queue.empty():
                    collected.append(self._queue.get_nowait())
                try:
                    await self._shadow(collected)
                finally:
                    for work in collected:
                        self._pending_rows -= len(work.rows)
                        self._queue.task_done()
        finally:  # what is still queued at shutdown is not predicted
            while not self._queue.empty():
                self._count(SHUTDOWN, len(self._queue.get_nowait().rows))

    async def join(self) -> None:
        """Until every queued shadow is logged or dropped (tests; a graceful drain)."""
        await self._queue.join()

    async def _shadow(self, collected: list[ShadowWork]) -> None:
        records: list[dict[str, Any]] = []
        for work in collected:
            try:
                records += await self._predict(work)
            except Exception as exc:  # a broken candidate harms no caller: counted and logged
                self._failed(work.candidate, exc, len(work.rows))
        if not records:
            return
        try:
            async with self.sessions() as db:
                await db.exec(insert(PredictionLog), params=records)  # one multi-row INSERT
                await db.commit()
        except Exception as exc:
            log.warning("shadow predictions not logged: %s: %s", type(exc).__name__, exc)
            self._count(FAILED, len(records))
            return
        self._count(LOGGED, len(records))

    async def _predict(self, work: ShadowWork) -> list[dict[str, Any]]:
        """The log rows of `work`'s shadow; none when no inference slot came free in time."""
        batch = np.asarray(work.rows, dtype=np.float32)
        while (answer := await self.inference.predict_if_free(work.candidate, batch)) is None:
            if time.monotonic() - work.queued_at > self.max_wait:
                self._count(BUSY, len(work.rows))
                return []
            await asyncio.sleep(BUSY_RETRY_SECONDS)
        prediction, latency_ms = answer
        return [
            {
                "model_name": work.candidate.name,
                "model_version": work.candidate.version,
                "model_sha256": work.candidate.sha256,
                "input": {"pixels": list(row)},
                "output": {"label": int(label), "probabilities": [round(float(p), 6) for p in probabilities]},
                "latency_ms": latency_ms,
                "request_id": work.request_id,
                "shadow_of": production_id,
            }
            for row, label, probabilities, production_id in zip(
                work.rows, prediction.labels, prediction.probabilities, work.production_ids, strict=True
            )
        ]

    def _failed(self, candidate: LoadedModel, exc: Exception, rows: int) -> None:
        if candidate.sha256 not in self._failing:  # logged once per candidate, not per request
            self._failing.add(candidate.sha256)
            log.warning(
                "shadow predictions of %s %s fail: %s: %s",
                candidate.name,
                candidate.version,
                type(exc).__name__,
                exc,
            )
        self._count(FAILED, rows)

    def _count(self, outcome: str, rows: int) -> None:
        self.counts[outcome] += rows
        if self.outcomes is not None:
            self.outcomes.labels(outcome).inc(rows)


# --8<-- [end:runner]


@dataclass(frozen=True)
class Shadow:
    """A request chosen for shadowing: once it is answered, `after` queues its rows."""

    runner: ShadowRunner
    candidate: LoadedModel
    request_id: str | None

    def after(
        self, answered_by: LoadedModel, rows: Sequence[Sequence[float]], production_ids: Sequence[int]
    ) -> None:
        if answered_by.version == self.candidate.version:  # a canary caller's: nothing to compare with
            return
        self.runner.offer(ShadowWork(self.candidate, production_ids, rows, self.request_id))
