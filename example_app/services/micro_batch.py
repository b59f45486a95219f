"""Micro-batching (LC06): single predictions that arrive together are predicted and logged together.

A single prediction costs far more than its share of a batch: a thread hop for one row, an INSERT
and a commit of one row. The batcher holds each single request's row for at most `wait_seconds`
(or until `max_rows` have come), then makes one inference call of all of them, off the event loop
as every prediction is, and one INSERT ... VALUES of their log rows, and answers each caller with
its own row's answer. What goes wrong stays with the row it went wrong for:

- a call that raises is made again row by row, so a row the model cannot predict gets its own
  error and the others their answers;
- a caller that is gone (cancelled: its client left, its deadline passed) before the call is
  left out of it; after the call, its row is still logged, since it was predicted;
- the inference call keeps its deadline (INFERENCE_TIMEOUT) and its limiter: a batch takes one
  slot of INFERENCE_CONCURRENCY, as a batch request does.

One batcher per process, on the app's resources; each batch runs in a task of its own, so no
caller's cancellation can stop it, and `close()` at shutdown sends what is collected at once and
waits for every batch to finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextvars import Context
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.ml.artifact import LoadedModel
from example_app.ml.inference import Inference, InferenceTimeoutError
from example_app.models import PredictionLog
from example_app.services.errors import PredictionFailedError, ServiceError, UnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchedAnswer:
    id: int  # the row in the prediction log
    output: dict[str, Any]  # label and probabilities, as the log holds them
    latency_ms: float  # from the request's arrival at the batcher to its answer: the wait included


@dataclass
class _Waiting:
    row: Sequence[float]
    request_id: str | None
    answer: asyncio.Future[BatchedAnswer]
    arrived: float = field(default_factory=time.perf_counter)


@dataclass
class _Batch:
    waiting: list[_Waiting] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)


# --8<-- [start:batcher]
class MicroBatcher:
    def __init__(
        self,
        inference: Inference,
        sessions: async_sessionmaker[AsyncSession],
        *,
        wait_seconds: float,
        max_rows: int,
        admitted: Callable[[], int] | None = None,
    ) -> None:
        self.inference = inference
        self.sessions = sessions
        self.wait_seconds = wait_seconds
        self.max_rows = max_rows
        # How many single predictions the process has admitted (api/admission.py): when every
        # one of them is here, no other row can come, and the batch goes without waiting more.
        self.admitted = admitted
        self._inside = 0  # callers waiting here
        self._open: dict[LoadedModel, _Batch] = {}  # collecting, one per model version object
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False

    async def predict(
        self, model: LoadedModel, row: Sequence[float], request_id: str | None
    ) -> BatchedAnswer:
        """`row`'s answer from `model`, predicted and logged with whatever else came meanwhile."""
        if self._closing:
            raise UnavailableError("the server is shutting down; try again")
        waiting = _Waiting(row, request_id, asyncio.get_running_loop().create_future())
        batch = self._open.get(model)
        if batch is None:  # the first row opens a batch, and its task starts the clock
            batch = self._open[model] = _Batch()
            # A context of its own: the batch is no one request's (no request id, no parent span).
            task = asyncio.create_task(self._collect(model, batch), name="micro-batch", context=Context())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        batch.waiting.append(waiting)
        if len(batch.waiting) >= self.max_rows:  # full: it goes now, the next row opens another
            del self._open[model]
            batch.full.set()
        self._inside += 1
        if self.admitted is not None and self._inside >= self.admitted():
            self._send_all()  # everyone admitted is here: waiting longer only adds latency
        try:
            # Cancelling the caller (its client left) cancels only its own future: the batch goes on.
            return await waiting.answer
        finally:
            self._inside -= 1

    def _send_all(self) -> None:
        for batch in self._open.values():
            batch.full.set()
        self._open.clear()

    async def close(self) -> None:
        """At shutdown: refuse new rows, send what is collected now, and wait for every batch."""
        self._closing = True
        self._send_all()
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _collect(self, model: LoadedModel, batch: _Batch) -> None:
        try:
            async with asyncio.timeout(self.wait_seconds):
                await batch.full.wait()
        except TimeoutError:
            pass  # the wait is over: go with what came
        if self._open.get(model) is batch:
            del self._open[model]
        try:
            await self._run(model, [w for w in batch.waiting if not w.answer.done()])
        except Exception as exc:  # never leave a caller waiting for ever
            log.exception("a micro-batch of %s %s failed", model.name, model.version)
            self._fail(
                batch.waiting, UnavailableError, f"the prediction failed ({type(exc).__name__}); try again"
            )

    async def _run(self, model: LoadedModel, waiting: list[_Waiting]) -> None:
        if not waiting:
            return
        try:
            outputs = await self._predict(model, waiting)
        except InferenceTimeoutError as exc:  # no thread came free in time: every row's 503
            self._fail(waiting, UnavailableError, str(exc))
            return
        predicted = [(w, output) for w, output in zip(waiting, outputs, strict=True) if output is not None]
        answered = time.perf_counter()
        records: list[dict[str, Any]] = [
            {
                "model_name": model.name,
                "model_version": model.version,
                "model_sha256": model.sha256,
                "input": {"pixels": list(w.row)},
                "output": output,
                "latency_ms": (answered - w.arrived) * 1000,
                "request_id": w.request_id,
            }
            for w, output in predicted
        ]
        if not records:
            return
        # One statement and one commit for the whole batch, ids in input order (services/prediction.py).
        statement = insert(PredictionLog).returning(col(PredictionLog.id), sort_by_parameter_order=True)
        try:
            async with self.sessions() as db:
                ids = (await db.exec(statement, params=records)).scalars().all()
                await db.commit()
        except Exception as exc:
            log.warning("a micro-batch's prediction log not written: %s: %s", type(exc).__name__, exc)
            self._fail(
                [w for w, _ in predicted], UnavailableError, "the prediction log is unavailable; try again"
            )
            return
        for (w, output), record, row_id in zip(predicted, records, ids, strict=True):
            if not w.answer.done():
                w.answer.set_result(BatchedAnswer(row_id, output, record["latency_ms"]))

    async def _predict(self, model: LoadedModel, waiting: list[_Waiting]) -> list[dict[str, Any] | None]:
        """Each row's output, in order: one call for all of them; if it raises, one call per row,
        and a row that fails alone gets its error (its output is None)."""
        rows = np.asarray([w.row for w in waiting], dtype=np.float32)
        try:
            prediction, _ = await self.inference.predict(model, rows)
            return _outputs(prediction.labels, prediction.probabilities)
        except InferenceTimeoutError:
            raise
        except Exception as exc:
            log.warning("a micro-batch of %d rows failed (%s): predicting them one by one", len(rows), exc)
        outputs: list[dict[str, Any] | None] = []
        for w, one in zip(waiting, rows, strict=True):
            try:
                prediction, _ = await self.inference.predict(model, one[np.newaxis])
                outputs += _outputs(prediction.labels, prediction.probabilities)
            except InferenceTimeoutError as exc:
                self._fail([w], UnavailableError, str(exc))
                outputs.append(None)
            except Exception as exc:
                log.warning(
                    "%s %s cannot predict a row: %s: %s", model.name, model.version, type(exc).__name__, exc
                )
                self._fail([w], PredictionFailedError, "the model could not predict this row")
                outputs.append(None)
        return outputs

    @staticmethod
    def _fail(waiting: Sequence[_Waiting], error: type[ServiceError], message: str) -> None:
        for w in waiting:
            if not w.answer.done():  # one exception each: every caller raises its own
                w.answer.set_exception(error(message))


# --8<-- [end:batcher]


def _outputs(labels: Any, probabilities: Any) -> list[dict[str, Any] | None]:
    return [
        {"label": int(label), "probabilities": [round(float(p), 6) for p in ps]}
        for label, ps in zip(labels, probabilities, strict=True)
    ]
