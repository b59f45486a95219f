"""The drift report (LC05): the prediction log's recent rows against the model's reference profile.

PostgreSQL does the counting: it unpacks each logged row's pixels (`jsonb_array_elements ... WITH
ORDINALITY`), buckets them with `width_bucket` on the profile's thresholds, and groups, so what
crosses the wire is n_features x n_bins counts plus one count per label, whatever the window's size,
not 64 numbers per row to be parsed in Python. The PSI itself (ml/drift.py) is a few vector
operations on those counts. The window is bounded (at most MAX_ROWS rows, newest first) and the
statement is under the app's statement_timeout like any other.
"""

from datetime import datetime
from typing import Any

import numpy as np
from anyio import to_thread
from sqlalchemy import ARRAY, DateTime, Float, bindparam, text
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.ml.artifact import LoadedModel
from example_app.ml.drift import DRIFT, psi
from example_app.ml.profile import ProfileError, ReferenceProfile, load_profile
from example_app.schemas.drift import DriftReport, FeatureDrift, LabelDrift
from example_app.schemas.prediction import ModelRef
from example_app.services.errors import NotFoundError, UnavailableError

MIN_ROWS = 200  # below this, sampling noise alone moves a feature's PSI towards the watch level
MAX_ROWS = 10_000  # the largest window: 640,000 pixels to bucket (bench/drift.py times it)
DEFAULT_ROWS = 1_000

# --8<-- [start:counts_sql]
# One statement, so the features and the labels are counted on the same snapshot of the same rows.
# A CTE referenced twice is computed once. Feature -1 carries the label counts.
COUNTS = text("""
WITH recent AS (
    SELECT input, output FROM predictions
    WHERE model_name = :name AND model_version = :version
      AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)
    ORDER BY id DESC
    LIMIT :last
)
SELECT pixel.ordinality - 1 AS feature,
       width_bucket(pixel.value::float8, :thresholds) AS bin,
       count(*) AS n
FROM recent CROSS JOIN LATERAL jsonb_array_elements(recent.input -> 'pixels') WITH ORDINALITY AS pixel
GROUP BY 1, 2
UNION ALL
SELECT -1, (output ->> 'label')::int, count(*) FROM recent GROUP BY 2
""").bindparams(
    bindparam("since", type_=DateTime(timezone=True)),
    bindparam("thresholds", type_=ARRAY(Float)),
)
# --8<-- [end:counts_sql]


class DriftService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    # --8<-- [start:report]
    async def report(
        self, model: LoadedModel, *, last: int, since: datetime | None = None, threshold: float = DRIFT
    ) -> DriftReport:
        """PSI of each feature and of the predicted labels over the model's newest `last` logged
        rows (logged at or after `since`, if given), flagged at or past `threshold`."""
        profile = await self._profile(model)
        params = {
            "name": model.name,
            "version": model.version,
            "since": since,
            "last": last,
            "thresholds": profile.bin_thresholds,
        }
        counts = (await self.db.exec(COUNTS, params=params)).all()  # type: ignore[call-overload]
        features, labels = self._arrays(profile, counts)
        rows = int(labels.sum())
        report: dict[str, Any] = {
            "model": ModelRef(name=model.name, version=model.version, sha256=model.sha256),
            "rows": rows,
            "min_rows": MIN_ROWS,
            "last": last,
            "since": since,
            "threshold": threshold,
        }
        if rows < MIN_ROWS:
            detail = f"{rows} logged rows in the window; a verdict needs at least {MIN_ROWS}"
            return DriftReport(
                **report, status="too_few_rows", detail=detail, labels=None, features=[], flagged_features=[]
            )

        feature_psi = psi(profile.feature_counts, features)
        label_psi = float(psi(profile.label_counts, labels))
        flagged = [i for i, value in enumerate(feature_psi) if value >= threshold]
        drifted = bool(flagged) or label_psi >= threshold
        detail = (
            f"{len(flagged)} of {len(feature_psi)} features at or past PSI {threshold:g}; "
            f"the predicted labels {'are' if label_psi >= threshold else 'are not'}"
        )
        return DriftReport(
            **report,
            status="drift" if drifted else "stable",
            detail=detail,
            labels=LabelDrift(
                psi=label_psi,
                flagged=label_psi >= threshold,
                expected=_shares(profile.classes, np.asarray(profile.label_counts)),
                observed=_shares(profile.classes, labels),
            ),
            features=[
                FeatureDrift(feature=i, psi=float(value), flagged=value >= threshold)
                for i, value in enumerate(feature_psi)
            ],
            flagged_features=flagged,
        )

    # --8<-- [end:report]

    @staticmethod
    async def _profile(model: LoadedModel) -> ReferenceProfile:
        try:
            profile = await to_thread.run_sync(load_profile, model)  # a file read and a hash
        except ProfileError as exc:
            raise UnavailableError(str(exc)) from None
        if profile is None:
            raise NotFoundError("reference profile of model", f"{model.name} {model.version}")
        return profile

    @staticmethod
    def _arrays(profile: ReferenceProfile, counts: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The SQL's (feature, bin, n) rows as a (n_features, n_bins) array and a label vector."""
        features = np.zeros((len(profile.feature_counts), len(profile.bin_thresholds) + 1), np.int64)
        labels = np.zeros(len(profile.classes), np.int64)
        position = {label: i for i, label in enumerate(profile.classes)}
        for feature, bin_, n in counts:
            if feature == -1:
                labels[position[bin_]] = n
            else:
                features[feature, bin_] = n
        return features, labels


def _shares(classes: list[int], counts: np.ndarray[Any, Any]) -> dict[str, float]:
    total = counts.sum()
    return {str(c): round(float(n / total), 6) for c, n in zip(classes, counts, strict=True)}
