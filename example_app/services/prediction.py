"""Predictions: run the model off the event loop, log every answer in one INSERT, read the log back."""

from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Row, insert, select, tuple_
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.database import begin_transaction
from example_app.ml.artifact import LoadedModel
from example_app.ml.inference import Inference, InferenceTimeoutError
from example_app.models import PredictionLog
from example_app.schemas.prediction import ModelRef, PredictionResult
from example_app.services.errors import UnavailableError
from example_app.services.keyset import Keyset
from example_app.services.micro_batch import MicroBatcher

# What the log's readers get: everything but the input, which can be large (see export).
LOG_COLUMNS = (
    col(PredictionLog.id),
    col(PredictionLog.model_name),
    col(PredictionLog.model_version),
    col(PredictionLog.output),
    col(PredictionLog.latency_ms),
    col(PredictionLog.created_at),
)


class PredictionService:
    def __init__(
        self,
        db: AsyncSession,
        inference: Inference,
        request_id: str | None = None,
        batcher: MicroBatcher | None = None,
    ) -> None:
        self.db = db
        self.inference = inference
        self.request_id = request_id  # written on each row this service logs
        self.batcher = batcher  # single predictions go through it, when micro-batching is on

    # --8<-- [start:predict]
    async def predict(
        self, model: LoadedModel, rows: Sequence[Sequence[float]]
    ) -> tuple[ModelRef, float, list[PredictionResult]]:
        """Predict `rows` in one vectorised call and log one row each; answers in input order."""
        batch = np.asarray(rows, dtype=np.float32)  # validated already: exact shape, finite
        try:
            prediction, latency_ms = await self.inference.predict(model, batch)
        except InferenceTimeoutError as exc:
            raise UnavailableError(str(exc)) from None
        outputs = [
            {"label": int(label), "probabilities": [round(float(p), 6) for p in probabilities]}
            for label, probabilities in zip(prediction.labels, prediction.probabilities, strict=True)
        ]
        records: list[dict[str, Any]] = [
            {
                "model_name": model.name,
                "model_version": model.version,
                "model_sha256": model.sha256,
                "input": {"pixels": list(row)},
                "output": output,
                "latency_ms": latency_ms,
                "request_id": self.request_id,
            }
            for row, output in zip(rows, outputs, strict=True)
        ]
        # One statement for the whole batch: SQLAlchemy renders a multi-row INSERT ... VALUES
        # (its "insertmanyvalues"), and sort_by_parameter_order keeps the ids in input order.
        statement = insert(PredictionLog).returning(col(PredictionLog.id), sort_by_parameter_order=True)
        ids = (await self.db.exec(statement, params=records)).scalars().all()
        await self.db.commit()
        ref = ModelRef(name=model.name, version=model.version, sha256=model.sha256)
        results = [PredictionResult(id=i, **output) for i, output in zip(ids, outputs, strict=True)]
        return ref, latency_ms, results

    # --8<-- [end:predict]

    # --8<-- [start:predict_one]
    async def predict_one(
        self, model: LoadedModel, row: Sequence[float]
    ) -> tuple[ModelRef, float, PredictionResult]:
        """One row: micro-batched with other requests' rows when a batcher is given, else alone."""
        if self.batcher is None:
            ref, latency_ms, (result,) = await self.predict(model, [row])
            return ref, latency_ms, result
        # The request's transaction only read (its caller's account): ended here, its connection
        # goes back to the pool while the row waits for its batch, which writes the log itself.
        await self.db.commit()
        answer = await self.batcher.predict(model, row, self.request_id)
        ref = ModelRef(name=model.name, version=model.version, sha256=model.sha256)
        return ref, answer.latency_ms, PredictionResult(id=answer.id, **answer.output)

    # --8<-- [end:predict_one]

    # --8<-- [start:keyset]
    async def page(self, *, after: Keyset | None, limit: int) -> tuple[Sequence[Row[Any]], Keyset | None]:
        """Newest first, `limit` rows older than `after`, and the key to continue from (or None)."""
        newest_first = (col(PredictionLog.created_at).desc(), col(PredictionLog.id).desc())
        statement = select(*LOG_COLUMNS).order_by(*newest_first).limit(limit + 1)  # +1: is there more?
        if after is not None:
            # A row comparison: the (created_at, id) index seeks straight to the position, so a
            # deep page costs what the first one does (OFFSET would read and drop every row before it).
            statement = statement.where(
                tuple_(col(PredictionLog.created_at), col(PredictionLog.id)) < tuple_(*after)
            )
        rows = (await self.db.exec(statement)).all()  # type: ignore[call-overload]  # a column select
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, Keyset(rows[-1].created_at, rows[-1].id) if more else None

    # --8<-- [end:keyset]

    # --8<-- [start:export]
    async def export(self, batch_rows: int = 1_000) -> AsyncIterator[Row[Any]]:
        """Every logged prediction, oldest first, read through a server-side cursor.

        `stream()` opens a cursor on the server and fetches `batch_rows` at a time, so memory holds
        one batch, not the table. Plain columns, not ORM objects: nothing accumulates in the
        session's identity map while the rows go by.
        """
        statement = (
            select(*LOG_COLUMNS, col(PredictionLog.input))
            .order_by(col(PredictionLog.id))
            .execution_options(yield_per=batch_rows)
        )
        await begin_transaction(self.db)  # a server-side cursor lives in one; a GET's session has none
        result = await self.db.stream(statement)
        try:
            async for row in result:
                yield row
        finally:
            await result.close()  # also when the client went away mid-stream

    # --8<-- [end:export]
