"""The drift report's answer (LC05): PSI per feature and of the predicted labels, flagged past a threshold."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from example_app.schemas.prediction import ModelRef


class FeatureDrift(BaseModel):
    feature: int  # the pixel's index, 0..n_features-1
    psi: float
    flagged: bool  # psi >= threshold


class LabelDrift(BaseModel):
    psi: float
    flagged: bool
    expected: dict[str, float]  # label -> share of the training rows the model gave it
    observed: dict[str, float]  # label -> share of the rows in the window


class DriftReport(BaseModel):
    model: ModelRef
    status: Literal["stable", "drift", "too_few_rows"]
    detail: str  # one sentence saying why the status is what it is
    rows: int  # logged predictions in the window
    min_rows: int  # fewer than this: no verdict (PSI of a handful of rows is mostly noise)
    last: int  # the window: at most this many rows, newest first ...
    since: datetime | None  # ... logged at or after this instant, if given
    threshold: float
    labels: LabelDrift | None  # None with too few rows
    features: list[FeatureDrift]  # one per feature, in order; empty with too few rows
    flagged_features: list[int]  # the features at or past the threshold
