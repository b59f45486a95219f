"""HD03: a body over the limit is a 413 before it is parsed, chunked or not, on the served app,
and it does not hold up the worker: /health keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from example_app.core.config import Settings, get_settings
from tests.support import ServedApp, path, served_app, served_in_thread

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


# --8<-- [start:readable_413]
TWENTY_MB = 20 * 1024 * 1024
OVER = {"detail": f"request body over the limit of {LIMIT} bytes"}


@pytest.fixture(scope="module")
def threaded(settings: Settings) -> Iterator[str]:
    """The app under real uvicorn (its default HTTP parser), in a thread of this process."""
    from example_app.main import create_app

    with served_in_thread(create_app(settings)) as url:
        yield url


def batch_of(size: int) -> bytes:
    """A prediction batch of `size` bytes: far over the limit, and valid JSON all the same."""
    row = b'{"pixels": [' + b"0.0, " * 63 + b"0.0]}, "
    rows = row * (size // len(row))
    return b'{"inputs": [' + rows[:-2] + b"]}"


def urllib_post(url: str, body: bytes | Iterator[bytes]) -> tuple[int, dict[str, object]]:
    """What urllib (and every client like it) does: send the whole body, then read the answer."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.mark.pattern("HD03")
@pytest.mark.parametrize("client", ["urllib", "httpx"])
@pytest.mark.parametrize("route", ["predict_batch", "create_user"])
def test_a_client_that_sends_all_of_a_20_mb_body_first_reads_the_413(
    threaded: str, client: str, route: str
) -> None:
    """A declared Content-Length over the limit is answered at once; the server then reads (and
    drops) the rest of the body, so that the client's send completes and it reads the answer.
    Closing at once would reset the connection under a client still sending: urllib then sees
    `ConnectionResetError` or `BrokenPipeError`, never the 413."""
    url, body = f"{threaded}{path(route)}", batch_of(TWENTY_MB)
    if client == "urllib":
        status, answer = urllib_post(url, body)
    else:
        response = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
        status, answer = response.status_code, response.json()
    assert status == 413
    assert answer["detail"] == OVER["detail"]


@pytest.mark.pattern("HD03")
def test_a_chunked_20_mb_body_gets_its_413_read_too(threaded: str) -> None:
    """Without a Content-Length the limit is met while reading; urllib sends an iterable chunked."""
    chunks = (b"1," * (512 * 1024) for _ in range(TWENTY_MB // (1024 * 1024)))
    status, answer = urllib_post(f"{threaded}{path('create_user')}", iter([b"[", *chunks, b"1]"]))
    assert (status, answer["detail"]) == (413, OVER["detail"])


@pytest.fixture(scope="module")
def short_drain(settings: Settings) -> Iterator[str]:
    """The same, with the drain bounded at 1 s."""
    from example_app.core.config import load_settings
    from example_app.main import create_app

    bounded = load_settings(**{**settings.model_dump(), "REFUSED_BODY_DRAIN_SECONDS": 1.0})
    with served_in_thread(create_app(bounded)) as url:
        yield url


def closed_after(url: str, trickle: bool) -> tuple[bytes, float]:
    """Declare 20 MB, send 64 KiB, then nothing (or 64 KiB every 50 ms); what the server
    answered, and how long after the first bytes it closed the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"POST {path('create_user')} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {TWENTY_MB}\r\n\r\n".encode() + b"[" * 65_536)
        started, answer = time.monotonic(), sock.recv(65_536)  # the 413, at once
        try:
            while trickle:
                sock.sendall(b"[" * 65_536)
                time.sleep(0.05)
                assert time.monotonic() - started < 15, "still reading after 15 s"
            while sock.recv(65_536):  # until the server closes
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed while we were still sending: the close of a bounded drain
        return answer, time.monotonic() - started


@pytest.mark.pattern("HD03")
@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
def test_the_rest_of_a_refused_body_is_read_for_a_bounded_time(short_drain: str, trickle: bool) -> None:
    """A client that stalls after its headers, or keeps sending slowly, is not waited for
    beyond the drain's bound; its 413 was there to read from the start."""
    answer, waited = closed_after(short_drain, trickle)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"] == OVER["detail"]
    assert 0.9 < waited < 5  # the drain's 1 s, then the close (margins: a busy 2-core machine)


# --8<-- [end:readable_413]


@pytest.mark.pattern("HD01")
async def test_a_nul_name_on_the_served_app_is_a_422_not_a_500(app_server: ServedApp) -> None:
    body = b'{"email": "nul@example.com", "password": "long enough", "name": "a\\u0000b"}'
    async with httpx.AsyncClient(base_url=app_server.url, timeout=30) as client:
        response = await client.post(
            "/api/v1/users", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


@pytest.mark.pattern("HD03")
async def test_a_request_whose_body_no_route_reads_passes_the_limit_as_it_came() -> None:
    # A GET's body is never read, so there is nothing to count: the app gets the server's own
    # receive and send, and the most frequent requests pay nothing for the limit.
    from example_app.api.body_limit import BodySizeLimit

    seen: dict[str, object] = {}

    async def app(scope: object, receive: object, send: object) -> None:
        seen.update(receive=receive, send=send)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        pass

    limited = BodySizeLimit(app, max_bytes=10, drain_seconds=0.1)
    for method, passed in (("GET", True), ("HEAD", True), ("POST", False)):
        scope = {"type": "http", "method": method, "headers": [(b"content-length", b"5")]}
        await limited(scope, receive, send)
        assert (seen["receive"] is receive and seen["send"] is send) is passed, method
