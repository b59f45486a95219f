"""LC03 as served: shadow traffic leaves the caller's latency where it was.

uvicorn serves the app on a loopback port; one client sends single predictions one after the
other, in alternating blocks with shadowing off (0 %) and on (100 %), so that whatever else the
machine does falls on both alike. The medians of the two are compared.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sklearn.datasets import load_digits
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from example_app.core.config import APP_DIR, Settings, load_settings
from example_app.main import create_app
from example_app.services.model_registry import CANDIDATE
from tests.ml.artifacts import coarse_digits_model
from tests.ml.conftest import Register
from tests.support import PASSWORD, bearer, path, served_in_thread

BLOCK, BLOCKS = 50, 16  # 400 requests each way, in blocks of 50, alternating
# Off the path, the shadows' work (an inference each, one INSERT per collection) runs beside the
# next requests on the same cores, and the event loop, and shows as a small rise in the median.
# On the path, every caller waits for the candidate's inference and a second write: the same
# test with the route awaiting its shadow fails this bound (a median ratio well past it).
MEDIAN_RATIO_BOUND = 1.25
DIGITS = [[float(v) for v in row] for row in load_digits().data[:BLOCK]]


def timed_blocks(base: str, app: FastAPI, settings: Settings) -> dict[float, list[float]]:
    """Seconds per request, client side, by shadow percent."""
    timings: dict[float, list[float]] = {0.0: [], 100.0: []}
    with httpx.Client(base_url=base, timeout=10) as client:
        body = {"email": "served-shadow@example.com", "password": PASSWORD, "name": "Shadow"}
        assert client.post(path("create_user"), json=body).status_code == 201
        token = client.post(path("login"), data={"username": body["email"], "password": PASSWORD}).json()
        client.headers.update(bearer(token["access_token"]))
        for pixels in DIGITS[:10]:  # warm up: connections, the first inference
            assert client.post(path("predict"), json={"pixels": pixels}).status_code == 200
        for block in range(BLOCKS):
            percent = 100.0 if block % 2 else 0.0
            # The dependencies read the app's settings at each request.
            app.state.settings = settings.model_copy(update={"MODEL_SHADOW_PERCENT": percent})
            for pixels in DIGITS:
                started = time.perf_counter()
                response = client.post(path("predict"), json={"pixels": pixels})
                timings[percent].append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                assert response.json()["model"]["version"] == "1.0.0"
    return timings


# --8<-- [start:served_latency]
@pytest.mark.system("uvicorn serving the app; 800 timed predictions")
@pytest.mark.pattern("LC03")
async def test_shadow_traffic_leaves_the_callers_latency_unchanged(
    tmp_path: Path, settings: Settings, register: Register, committed: AsyncEngine
) -> None:
    coarse_digits_model(tmp_path / "digits-2.0.0", "2.0.0")
    await register(tmp_path / "digits-2.0.0", CANDIDATE)
    served = load_settings(
        **{**settings.model_dump(), "MODEL_ROOTS": [APP_DIR / "ml" / "artifacts", tmp_path]}
    )
    app = create_app(served)
    with served_in_thread(app) as base:
        timings = await asyncio.to_thread(timed_blocks, base, app, served)
        # Every request of the 100 % blocks was shadowed: the comparison is of real shadow traffic.
        expected = BLOCK * BLOCKS // 2
        for _ in range(100):  # the worker writes what it collected: within a second, ten at most
            if (shadowed := await count(committed)) >= expected:
                break
            await asyncio.sleep(0.1)
        assert shadowed == expected
    off, on = statistics.median(timings[0.0]), statistics.median(timings[100.0])
    print(f"median latency: shadow 0 % {off * 1000:.2f} ms, 100 % {on * 1000:.2f} ms, ratio {on / off:.3f}")
    assert on / off <= MEDIAN_RATIO_BOUND, (off, on)


# --8<-- [end:served_latency]


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        shadowed: int = (
            await conn.execute(text("SELECT count(*) FROM predictions WHERE shadow_of IS NOT NULL"))
        ).scalar_one()
        return shadowed
