"""Canary traffic (LC04): a share of callers answered by the candidate, each always by the same."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import APP_DIR
from example_app.ml.artifact import DIGITS_MODEL_DIR, load_model
from example_app.services.canary import in_canary
from example_app.services.model_registry import CANDIDATE, DIGITS
from tests.ml.artifacts import copy_of_digits, tiny_blocks_model
from tests.ml.conftest import Register
from tests.support import AppFactory, CallerFactory, ClientFactory, path, sql


def within(count: int, n: int, share: float, sigmas: float = 4.5) -> bool:
    """`count` of `n` draws is a binomial(n, share) count (4.5 sigmas: a false alarm in 150,000)."""
    return abs(count - n * share) <= sigmas * math.sqrt(n * share * (1 - share))


# --8<-- [start:canary_tests]
@pytest.mark.pattern("LC04")
@pytest.mark.parametrize("percent", [1.0, 10.0, 50.0])
def test_the_share_of_callers_is_the_setting_within_statistical_bounds(percent: float) -> None:
    candidate = load_model(DIGITS_MODEL_DIR)
    n = 20_000
    chosen = sum(in_canary(user_id, candidate, percent) for user_id in range(1, n + 1))
    assert within(chosen, n, percent / 100), chosen


@pytest.mark.pattern("LC04")
def test_a_caller_stays_on_its_side_and_a_new_candidate_draws_a_new_cohort(tmp_path: Path) -> None:
    first = load_model(DIGITS_MODEL_DIR)
    tiny_blocks_model(tmp_path / "other", "2.0.0")
    other = load_model(tmp_path / "other")  # another candidate: another checksum
    users = range(1, 4_001)
    cohort = {u for u in users if in_canary(u, first, 50)}
    assert all({in_canary(u, first, 50) for _ in range(3)} == {u in cohort} for u in users)  # sticky
    assert {u for u in users if in_canary(u, first, 0)} == set()
    assert {u for u in users if in_canary(u, first, 100)} == set(users)
    again = {u for u in users if in_canary(u, other, 50)}
    # Independent cohorts: their overlap is that of two random halves (a quarter of the users).
    assert within(len(cohort & again), len(users), 0.25), len(cohort & again)


@pytest.mark.pattern("LC04")
async def test_canary_callers_are_answered_by_the_candidate_and_the_log_says_so(
    tmp_path: Path,
    register: Register,
    make_app: AppFactory,
    make_client: ClientFactory,
    make_caller: CallerFactory,
    db_session: AsyncSession,
    digit: dict[str, Any],
) -> None:
    copy_of_digits(tmp_path / "digits-1.0.1", "1.0.1")
    await register(tmp_path / "digits-1.0.1", CANDIDATE)
    app = await make_app(MODEL_CANARY_PERCENT=30, MODEL_ROOTS=[APP_DIR / "ml" / "artifacts", tmp_path])
    client = await make_client(app)
    candidate = app.state.resources.models.candidate(DIGITS)
    assert candidate is not None
    assert candidate.version == "1.0.1"
    answered: dict[int, set[str]] = {}
    for _ in range(60):
        caller = await make_caller()
        for _ in range(2):
            response = await client.post(path("predict"), json=digit, headers=caller.headers)
            assert response.status_code == 200, response.text
            answered.setdefault(caller.id, set()).add(response.json()["model"]["version"])
        explicit = await client.post(
            path("predict"), params={"version": "1.0.0"}, json=digit, headers=caller.headers
        )
        assert explicit.json()["model"]["version"] == "1.0.0"  # a named version is never redirected
    assert all(len(versions) == 1 for versions in answered.values())  # sticky
    expected = {user: {"1.0.1" if in_canary(user, candidate, 30) else "1.0.0"} for user in answered}
    assert answered == expected
    on_candidate = sum(versions == {"1.0.1"} for versions in answered.values())
    assert 0 < on_candidate < 60, on_candidate
    assert within(on_candidate, 60, 0.3), on_candidate
    logged = (
        await sql(db_session, "SELECT count(*) FROM predictions WHERE model_version = '1.0.1'")
    ).scalar_one()
    assert logged == 2 * on_candidate  # the log says which version answered each


@pytest.mark.pattern("LC04")
async def test_without_a_share_or_a_candidate_everyone_gets_production(
    tmp_path: Path,
    register: Register,
    make_app: AppFactory,
    make_client: ClientFactory,
    make_caller: CallerFactory,
    digit: dict[str, Any],
) -> None:
    copy_of_digits(tmp_path / "digits-1.0.1", "1.0.1")
    await register(tmp_path / "digits-1.0.1", CANDIDATE)
    app = await make_app(MODEL_CANARY_PERCENT=0, MODEL_ROOTS=[APP_DIR / "ml" / "artifacts", tmp_path])
    client = await make_client(app)
    for _ in range(10):
        caller = await make_caller()
        response = await client.post(path("predict"), json=digit, headers=caller.headers)
        assert response.json()["model"]["version"] == "1.0.0"


# --8<-- [end:canary_tests]
