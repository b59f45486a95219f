"""Predictions: run the model off the event loop, then log every answer in one INSERT."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.ml.artifact import LoadedModel
from example_app.ml.inference import Inference, InferenceTimeoutError
from example_app.models import PredictionLog
from example_app.schemas.prediction import ModelRef, PredictionResult
from example_app.services.errors import UnavailableError


class PredictionService:
    def __init__(self, db: AsyncSession, inference: Inference) -> None:
        self.db = db
        self.inference = inference

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
