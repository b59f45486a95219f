"""Running a model off the event loop: a bounded number of predictions at once, each with a deadline.

The event loop must stay free for every other request, so inference runs in worker threads
(onnxruntime releases the GIL while it computes). A capacity limiter caps how many compute at
once, matched to the cores, so a burst of predictions queues instead of oversubscribing the CPU;
a prediction that cannot start and finish within the timeout becomes a 503, never a hang.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import anyio
import numpy as np
import numpy.typing as npt
from anyio import WouldBlock
from anyio.to_thread import run_sync
from opentelemetry.trace import NoOpTracer, Tracer
from prometheus_client import Histogram

from example_app.ml.artifact import LoadedModel, Prediction


class InferenceTimeoutError(Exception):
    """No worker was free, or the prediction ran too long, within the timeout."""


# --8<-- [start:inference]
@dataclass
class Inference:
    concurrency: int
    timeout: float
    latency: Histogram | None = None  # the app's metrics: seconds by model name and version
    batch_rows: Histogram | None = None  # and rows per call
    tracer: Tracer = field(default_factory=NoOpTracer)  # a span per call when tracing is on
    limiter: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.concurrency)
        self._background_threads = anyio.CapacityLimiter(1)

    async def predict(self, model: LoadedModel, rows: npt.NDArray[np.float32]) -> tuple[Prediction, float]:
        """The model's answer for `rows` and the milliseconds it took (waiting included)."""
        started = time.perf_counter()
        attributes: dict[str, str | int] = {
            "model.name": model.name,
            "model.version": model.version,
            "inference.rows": len(rows),
        }
        try:
            with self.tracer.start_as_current_span("inference", attributes=attributes):
                async with asyncio.timeout(self.timeout):
                    # Waiting for the limiter is cancellable; a computation that started runs to
                    # its end (a thread cannot be killed): at most `concurrency` compute at once.
                    prediction = await run_sync(model.predict_proba, rows, limiter=self.limiter)
        except TimeoutError:
            raise InferenceTimeoutError(f"no prediction within {self.timeout:g} s; try again") from None
        seconds = time.perf_counter() - started
        if self.latency is not None:
            self.latency.labels(model.name, model.version).observe(seconds)
        if self.batch_rows is not None:
            self.batch_rows.labels(model.name, model.version).observe(len(rows))
        return prediction, seconds * 1000

    # --8<-- [end:inference]

    # --8<-- [start:predict_if_free]
    async def predict_if_free(
        self, model: LoadedModel, rows: npt.NDArray[np.float32]
    ) -> tuple[Prediction, float] | None:
        """Work that must never delay a request (shadow predictions): `model`'s answer if a slot
        of the limiter is free now and no request waits for one, else None at once. The slot is
        held until the computation ends, so at most `concurrency` compute at once, as always."""
        borrower = object()
        try:
            self.limiter.acquire_on_behalf_of_nowait(borrower)  # refused while requests wait
        except WouldBlock:
            return None
        try:
            started = time.perf_counter()
            # A thread of its own limiter: the slot above is already counted in the shared one.
            prediction = await run_sync(model.predict_proba, rows, limiter=self._background_threads)
            seconds = time.perf_counter() - started
        finally:
            self.limiter.release_on_behalf_of(borrower)
        if self.latency is not None:
            self.latency.labels(model.name, model.version).observe(seconds)
        return prediction, seconds * 1000

    # --8<-- [end:predict_if_free]
