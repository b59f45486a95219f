"""API schemas for predictions: exact shapes in, the model's identity on every answer out."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Rows per POST /predictions/batch: one vectorised predict and one INSERT of that many rows. Part
# of the API's contract (the schema's maxItems), so a constant rather than a setting.
PREDICTION_BATCH_MAX = 1_000

# strict: a JSON string "3" is refused, not converted; NaN and Infinity are refused too (Python's
# JSON parser accepts them, PostgreSQL's jsonb does not, and the model would answer nonsense).
# How many and in which range is the model version's contract (api/contract.py, from its manifest).
Feature = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class PredictionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pixels: Annotated[
        list[Feature],
        Field(description="the model version's features (an 8x8 digit: 64 grey levels 0-16, row by row)"),
    ]


class BatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: Annotated[list[PredictionInput], Field(min_length=1, max_length=PREDICTION_BATCH_MAX)]


class ModelRef(BaseModel):
    """Which model answered: enough to find the exact artifact again."""

    name: str
    version: str
    sha256: str


class PredictionResult(BaseModel):
    id: int  # the row in the prediction log
    label: int
    probabilities: list[float]  # one per class, in the order of the model's `classes`


class PredictionResponse(PredictionResult):
    model: ModelRef
    latency_ms: float


class BatchResponse(BaseModel):
    model: ModelRef
    latency_ms: float
    predictions: list[PredictionResult]  # in the order of the input rows


class ModelInfo(BaseModel):
    name: str
    loaded: bool
    error: str | None = None  # why it is not loaded (one line)
    manifest: dict[str, Any] | None = None  # name, version, sha256, trained_at, metrics, ...


class LoggedPrediction(BaseModel):
    """A row of the prediction log, as readers of the log get it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    model_name: str
    model_version: str
    output: dict[str, Any]
    latency_ms: float
    created_at: datetime


class ExportedPrediction(LoggedPrediction):
    input: dict[str, Any]


class PredictionPage(BaseModel):
    items: list[LoggedPrediction]
    # Pass as `after` for the next (older) page; null on the last page.
    next: str | None
