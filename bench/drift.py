"""Drift reports (LC05) of the app's own service on unshifted and shifted held-out inputs, and the
time of the largest report the route allows. Explained on docs/ml/drift.md.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import harness as h

TIMED_ROUNDS = 5

Images = npt.NDArray[np.floating[Any]]

# --8<-- [start:scenarios]
SCENARIOS: dict[str, Callable[[Images], Images]] = {
    "unshifted (held-out split)": lambda x: x,
    "faded (half the ink)": lambda x: x / 2,
    "shifted one pixel right": lambda x: np.roll(x.reshape(-1, 8, 8), 1, axis=2).reshape(-1, 64),
    "inverted (16 - pixel)": lambda x: 16 - x,
}
# --8<-- [end:scenarios]


async def log_predictions(db: Any, model: Any, x: Images) -> None:
    """`x` predicted and logged by the app's service, as POST /predictions/batch does it."""
    from example_app.ml.inference import Inference
    from example_app.services.prediction import PredictionService

    service = PredictionService(db, Inference(concurrency=1, timeout=600))
    for start in range(0, len(x), 1_000):
        await service.predict(model, x[start : start + 1_000].tolist())


def run() -> dict[str, Any]:
    with h.database() as db:
        return {"postgres": db.postgres, **asyncio.run(measure(db.url))}


async def measure(database_url: str) -> dict[str, Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from example_app.core.config import load_settings
    from example_app.core.database import create_engine
    from example_app.ml.artifact import load_model
    from example_app.ml.drift import DRIFT, WATCH
    from example_app.ml.training import load_split
    from example_app.services.drift import MAX_ROWS, DriftService

    model = load_model()
    _, x_test, _, _ = load_split()
    engine = create_engine(load_settings(DATABASE_URL=database_url))
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    scenarios = []
    try:
        async with sessions() as db:
            for name, shift in SCENARIOS.items():
                await db.exec(text("TRUNCATE predictions"))  # type: ignore[call-overload]
                await log_predictions(db, model, shift(x_test))
                report = await DriftService(db).report(model, last=len(x_test))
                assert report.labels is not None
                scenarios.append(
                    {
                        "name": name,
                        "rows": report.rows,
                        "status": report.status,
                        "flagged_features": len(report.flagged_features),
                        "max_feature_psi": max(f.psi for f in report.features),
                        "median_feature_psi": statistics.median(f.psi for f in report.features),
                        "label_psi": report.labels.psi,
                        "feature_psi": [round(f.psi, 4) for f in report.features],
                    }
                )
            # The largest window the route allows: how long the report takes at its bound.
            await db.exec(text("TRUNCATE predictions"))  # type: ignore[call-overload]
            repeats = -(-MAX_ROWS // len(x_test))
            await log_predictions(db, model, np.tile(x_test, (repeats, 1))[:MAX_ROWS])
            assert (await DriftService(db).report(model, last=MAX_ROWS)).rows == MAX_ROWS
            timings = await h.timed_async(lambda: DriftService(db).report(model, last=MAX_ROWS), TIMED_ROUNDS)
            await db.exec(text("TRUNCATE predictions"))  # type: ignore[call-overload]
            await db.commit()
    finally:
        await engine.dispose()
    return {
        "model": f"{model.name} {model.version}",
        "threshold": DRIFT,
        "watch": WATCH,
        "scenarios": scenarios,
        "timed_rows": MAX_ROWS,
        "timed_median_ms": statistics.median(timings) * 1000,
        "timed_rounds": TIMED_ROUNDS,
    }


def report(data: dict[str, Any]) -> str:
    spec = ["inputs:<{name}", "status:{status}", "flagged:{flagged_features}/64"]
    spec += ["max PSI:{max_feature_psi:.3f}", "median PSI:{median_feature_psi:.3f}"]
    spec += ["label PSI:{label_psi:.3f}"]
    return "\n".join([
        f"Drift reports of {data['model']}: {data['scenarios'][0]['rows']} held-out rows, altered or not; "
        f"PSI threshold {data['threshold']:g}",
        *h.columns(spec, data["scenarios"]),
        f"A report over {data['timed_rows']:,} logged rows: {data['timed_median_ms']:.0f} ms "
        f"(median of {data['timed_rounds']})",
    ])  # fmt: skip


main = h.scenario("drift", run, report)
