"""Where inference runs, three ways: each is the real app (example_app.main.create_app) with one override.

uvicorn serves `bench.ml_serving_apps:create_app` (`--factory`) with BENCH_VARIANT set:

- `on-loop`: `get_inference` answers an object that calls `model.predict_proba` right in the
  route's coroutine, so the event loop computes and every other request waits for it;
- `threadpool`: the app as it is (worker threads behind a capacity limiter of
  INFERENCE_CONCURRENCY, and INFERENCE_TIMEOUT); nothing is overridden;
- `process-pool`: a ProcessPoolExecutor of PROCESSES processes, each loading the model once in
  its initializer; rows go to a worker and the prediction comes back pickled.

With BENCH_NO_GC_FREEZE set, the objects the lifespan froze (`gc.freeze()`) are unfrozen once it
has started: the garbage collector's full collections walk them again, as before that change.

The database URL and the other settings come from the environment, as for the app itself.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from example_app.ml.artifact import DIGITS_MODEL_DIR, LoadedModel, Prediction, load_model
from example_app.ml.inference import InferenceTimeoutError

if TYPE_CHECKING:  # the pool's worker processes import this module: they need no web framework
    from fastapi import FastAPI

PLACEMENTS = ("on-loop", "threadpool", "process-pool")
PROCESSES = 2  # one per core of the machine the figures were recorded on


class OnLoop:
    """The mistake ML02 is about: a CPU-bound call inside `async def` holds the event loop."""

    async def predict(self, model: LoadedModel, rows: npt.NDArray[np.float32]) -> tuple[Prediction, float]:
        started = time.perf_counter()
        prediction = model.predict_proba(rows)  # no await: nothing else runs until it returns
        return prediction, (time.perf_counter() - started) * 1000


# In each worker process: the model its initializer loaded (the parent's cannot be pickled).
_worker_model: LoadedModel | None = None


def _load_in_worker(directory: str) -> None:
    global _worker_model
    _worker_model = load_model(directory)


def _predict_in_worker(rows: npt.NDArray[np.float32]) -> Prediction:
    assert _worker_model is not None, "the pool's initializer loads the model"
    return _worker_model.predict_proba(rows)


def _ready() -> int:
    return os.getpid()


@dataclass
class ProcessPoolInference:
    """Same contract as `example_app.ml.inference.Inference`; the pool's size bounds the work.

    The workers hold their own copy of the committed artifact (the seeded production version), so the
    `model` argument only says which model was asked for.
    """

    pool: ProcessPoolExecutor
    timeout: float

    async def predict(self, model: LoadedModel, rows: npt.NDArray[np.float32]) -> tuple[Prediction, float]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                future = asyncio.get_running_loop().run_in_executor(self.pool, _predict_in_worker, rows)
                prediction = await future
        except TimeoutError:
            raise InferenceTimeoutError(f"no prediction within {self.timeout:g} s; try again") from None
        return prediction, (time.perf_counter() - started) * 1000


def create_app() -> FastAPI:
    # Imported here, not at the top: the pool's worker processes import this module too, and
    # need neither the app nor its settings.
    from example_app.api.dependencies import get_inference
    from example_app.core.config import load_settings
    from example_app.main import create_app as create_reference_app

    settings = load_settings()  # the environment's, as `uvicorn example_app.main:app` reads them
    app = create_reference_app(settings)
    placement = os.environ.get("BENCH_VARIANT", "threadpool")
    if placement == "on-loop":
        app.dependency_overrides[get_inference] = OnLoop
    elif placement == "process-pool":
        app_lifespan = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
            pool = ProcessPoolExecutor(
                PROCESSES,
                # spawn: a fork of a process that already runs threads (the loop's, onnxruntime's)
                # is not safe; each worker starts clean and loads the artifact itself.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_load_in_worker,
                initargs=(str(DIGITS_MODEL_DIR),),  # the committed artifact: production when seeded
            )
            with pool:
                # Start every worker now (each loads the model), not on the first requests.
                loop = asyncio.get_running_loop()
                await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(PROCESSES)))
                inference = ProcessPoolInference(pool, settings.INFERENCE_TIMEOUT)
                app.dependency_overrides[get_inference] = lambda: inference
                async with app_lifespan(app_):
                    yield

        app.router.lifespan_context = lifespan
    elif placement != "threadpool":
        raise SystemExit(f"BENCH_VARIANT must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if os.environ.get("BENCH_NO_GC_FREEZE"):
        started = app.router.lifespan_context

        @asynccontextmanager
        async def thawed(app_: FastAPI) -> AsyncIterator[None]:
            async with started(app_):
                gc.unfreeze()  # the start-up objects back in the collector's way, as before
                yield

        app.router.lifespan_context = thawed
    return app
