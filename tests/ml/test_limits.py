"""Request size limits (ML09): an oversized body is a 413 before it is parsed, nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import get_settings
from example_app.schemas.prediction import PREDICTION_BATCH_MAX
from tests.support import path, sql

LIMIT = get_settings().MAX_REQUEST_BODY_BYTES


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body with no Content-Length, sent in pieces (Transfer-Encoding: chunked)."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


# --8<-- [start:limit_tests]
@pytest.mark.pattern("ML09")
async def test_a_declared_length_over_the_limit_is_refused_unread(
    client: AsyncClient, db_session: AsyncSession
) -> None:
    body = b'{"rows": [' + b" " * LIMIT + b"]}"
    response = await client.post(path("predict_batch"), content=body)
    assert response.status_code == 413
    assert response.json()["detail"] == f"request body over the limit of {LIMIT} bytes"
    assert (await sql(db_session, "SELECT count(*) FROM predictions")).scalar_one() == 0


@pytest.mark.pattern("ML09")
async def test_a_chunked_body_is_cut_off_at_the_limit(client: AsyncClient, db_session: AsyncSession) -> None:
    # Whitespace is valid JSON padding, and no Content-Length is sent: only counting the bytes
    # as they arrive can refuse it. A 422 would mean it was read whole and parsed.
    response = await client.post(
        path("predict_batch"), content=chunks(LIMIT + 1), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert (await sql(db_session, "SELECT count(*) FROM predictions")).scalar_one() == 0


@pytest.mark.pattern("ML09")
async def test_the_largest_legitimate_batch_fits_under_the_limit(client: AsyncClient) -> None:
    row = {"pixels": [16.0] * 64}  # the longest numbers a pixel can have
    rows = [row] * PREDICTION_BATCH_MAX
    response = await client.post(path("predict_batch"), json={"rows": rows})
    assert len(response.request.content) < LIMIT
    assert response.status_code == 200


# --8<-- [end:limit_tests]
