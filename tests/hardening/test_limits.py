"""HD03: a body over the limit is a 413 before it is parsed, chunked or not, on the served app,
and it does not hold up the worker: /health keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from example_app.core.config import get_settings
from tests.support import ServedApp, served_app

TEN_MB = 10 * 1024 * 1024
LIMIT = get_settings().MAX_REQUEST_BODY_BYTES


@pytest.fixture(scope="module")
def app_server(database_url: str) -> Iterator[ServedApp]:
    with served_app(database_url) as server:
        yield server


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


async def chunked(total: int, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """A JSON array in an unknown field, sent without a Content-Length."""
    yield b'{"email": "a@example.com", "password": "long enough", "name": "A", "junk": ['
    sent = 0
    while sent < total:
        yield b"1," * (size // 2)
        sent += size
    yield b"1]}"


async def health_times(client: httpx.AsyncClient, until: asyncio.Event) -> list[float]:
    times = []
    while not until.is_set():
        started = time.perf_counter()
        response = await client.get("/api/v1/health")
        assert response.status_code == 200
        times.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return times


# --8<-- [start:limit_tests]
async def declared_but_unsent(url: str, size: int) -> tuple[int, float]:
    """Headers announcing `size` bytes and the first 64 KiB of them, then wait for the answer:
    what a server that reads before it decides would stall on (the client has more to send)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.perf_counter()
    head = f"POST /api/v1/users HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}Content-Length: {size}\r\n\r\n".encode() + b"[" * 65_536)
    await writer.drain()
    status_line = await reader.readline()
    elapsed = time.perf_counter() - started
    writer.close()
    return int(status_line.split()[1]), elapsed


async def chunked_post(url: str, size: int) -> tuple[int, float]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/users", content=chunked(size), headers={"content-type": "application/json"}
        )
        assert response.json()["detail"] == f"request body over the limit of {LIMIT} bytes"
        return response.status_code, time.perf_counter() - started


@pytest.mark.pattern("HD03")
@pytest.mark.parametrize("how", ["declared", "chunked"])
async def test_ten_megabytes_are_refused_fast_and_health_answers_meanwhile(
    app_server: ServedApp, how: str
) -> None:
    async with httpx.AsyncClient(base_url=app_server.url, timeout=30) as client:
        done = asyncio.Event()
        probe = asyncio.create_task(health_times(client, done))
        await asyncio.sleep(0.1)
        send = declared_but_unsent if how == "declared" else chunked_post
        status, elapsed = await send(app_server.url, TEN_MB)
        await asyncio.sleep(0.2)
        done.set()
        times = await probe
    assert status == 413
    assert elapsed < 2.0  # it was 12.9 s, for the worker to read and parse it all
    assert len(times) >= 5
    assert max(times) < 1.0  # the worker was never busy with the body (margins: a busy 2-core CI)


@pytest.mark.pattern("HD03")
async def test_a_hundred_megabytes_cost_the_server_no_memory(app_server: ServedApp) -> None:
    before = rss_mib(app_server.process.pid)
    async with httpx.AsyncClient(base_url=app_server.url, timeout=60) as client:
        for _ in range(3):
            response = await client.post(
                "/api/v1/users",
                content=chunked(100 * 1024 * 1024),
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 413
    assert rss_mib(app_server.process.pid) - before < 20  # it read at most the limit, then stopped


@pytest.mark.pattern("HD03")
@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"name": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001],
    ids=["deep-array", "deep-object"],
)
async def test_deep_nesting_under_the_limit_is_a_documented_400(app_server: ServedApp, body: bytes) -> None:
    # Python's JSON parser recurses: 100,000 levels raise RecursionError, which FastAPI answers
    # with 400 "There was an error parsing the body"; every route with a body documents it.
    assert len(body) < LIMIT
    async with httpx.AsyncClient(base_url=app_server.url, timeout=30) as client:
        response = await client.post(
            "/api/v1/users", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["detail"] == "There was an error parsing the body"
        assert (await client.get("/api/v1/health")).status_code == 200
        openapi = (await client.get("/openapi.json")).json()
        assert "400" in openapi["paths"]["/api/v1/users"]["post"]["responses"]


# --8<-- [end:limit_tests]


@pytest.mark.pattern("HD01")
async def test_a_nul_name_on_the_served_app_is_a_422_not_a_500(app_server: ServedApp) -> None:
    body = b'{"email": "nul@example.com", "password": "long enough", "name": "a\\u0000b"}'
    async with httpx.AsyncClient(base_url=app_server.url, timeout=30) as client:
        response = await client.post(
            "/api/v1/users", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
