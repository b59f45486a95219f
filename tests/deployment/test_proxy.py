"""DP05: the reverse proxy of deploy/compose.yaml, and the app behind it, as their own entry
points start them (deploy/proxy/entrypoint.sh and deploy/entrypoint.sh), on this machine.

The proxy closes what uvicorn never does, a client that stops half-way through its request; it
names the client in X-Forwarded-For, replacing what the client wrote there; and the app believes
that header from the proxy's address only (FORWARDED_ALLOW_IPS), so the per-address login limit
(AU06) counts real clients. The compose test runs the same two in their containers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.postgres_provider import free_port
from tests.hardening.test_limits import TWENTY_MB, batch_of, urllib_post
from tests.support import CHEAP_HASHING, ROOT

pytestmark = pytest.mark.system("an nginx process in front of the app, as deploy/ starts them")

HEADER_TIMEOUT = 1  # seconds: the proxy's client_header_timeout and client_body_timeout here
DEPLOY = ROOT / "deploy"


def wait_for(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{what} did not answer within 60 s"
        time.sleep(0.2)


@contextlib.contextmanager
def started(cmd: list[str], env: dict[str, str], health: str, what: str) -> Iterator[None]:
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    try:
        wait_for(health, process, what)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def app_by_its_entrypoint(database_url: str, **env: str) -> Iterator[str]:
    """`entrypoint app`, as the image runs it (migrate, then uvicorn), bound to loopback."""
    port = free_port()
    cheap = {name: str(value) for name, value in CHEAP_HASHING.items()}
    settings = {"DATABASE_URL": database_url, "HOST": "127.0.0.1", "PORT": str(port), **cheap, **env}
    settings["PATH"] = f"{ROOT / 'venv' / 'bin'}:{os.environ['PATH']}"
    url = f"http://127.0.0.1:{port}"
    with started(["sh", str(DEPLOY / "entrypoint.sh"), "app"], settings, f"{url}/api/v1/health", "the app"):
        yield url


@contextlib.contextmanager
def proxy_in_front_of(app_url: str, folder: Path) -> Iterator[str]:
    """The proxy's entry point: nginx on a port of its own, the app as its upstream."""
    port = free_port()
    env = {
        "UPSTREAM": app_url.removeprefix("http://"),
        "LISTEN_PORT": str(port),
        "PROXY_DIR": str(folder),
        "HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "BODY_TIMEOUT": str(HEADER_TIMEOUT),
        "PATH": f"/usr/sbin:{os.environ['PATH']}",
    }
    url = f"http://127.0.0.1:{port}"
    with started(["sh", str(DEPLOY / "proxy" / "entrypoint.sh")], env, f"{url}/api/v1/health", "nginx"):
        yield url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[tuple[str, str]]:
    """(the proxy's URL, the app's own): the app believes X-Forwarded-For from the proxy, whose
    connections to it come from 127.0.0.1, and from no other address."""
    from tests.support import scratch_database

    with (
        scratch_database(database_url, "proxy") as url,  # the entry point migrates it
        app_by_its_entrypoint(url, FORWARDED_ALLOW_IPS="127.0.0.1") as app,
        proxy_in_front_of(app, tmp_path_factory.mktemp("proxy")) as proxy,
    ):
        yield proxy, app


def seconds_until_closed(url: str, partial: bytes, patience: float = 5.0) -> float:
    """Send the start of a request and nothing more; how long until the server closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=patience) as sock:
        sock.sendall(partial)
        started_at = time.monotonic()
        try:
            while sock.recv(4096):  # nginx may say 408 first; uvicorn says nothing
                pass
        except TimeoutError:
            return float("inf")  # still open
        except ConnectionResetError:
            pass
        return time.monotonic() - started_at


def logins(url: str, source: str, attempts: int, rotate: bool = True) -> list[int]:
    """Login guesses from a loopback address of our choosing, each claiming another address."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport) as client:
        return [
            client.post(
                "/api/v1/auth/token",
                data={"username": f"victim{n}@example.com", "password": "guess"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"} if rotate else {},
            ).status_code
            for n in range(attempts)
        ]


# --8<-- [start:proxy_tests]
@pytest.mark.pattern("DP05", "HD03")
def test_the_proxy_closes_a_half_sent_request_that_uvicorn_would_hold(stack: tuple[str, str]) -> None:
    proxy, app = stack
    half_headers = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"  # no blank line: never finished
    half_body = b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    for partial in (half_headers, half_body):
        assert HEADER_TIMEOUT * 0.9 < seconds_until_closed(proxy, partial) < HEADER_TIMEOUT + 3
    assert seconds_until_closed(app, half_headers, patience=3) == float("inf")  # uvicorn: no timeout


@pytest.mark.pattern("DP05", "AU06")
def test_behind_the_proxy_the_login_limit_counts_each_real_client(stack: tuple[str, str]) -> None:
    proxy, _ = stack
    # 127.0.0.2 claims a new address on every attempt: the proxy replaces the claim with the
    # address it sees, and the app believes the proxy. The 21st attempt is refused.
    assert logins(proxy, "127.0.0.2", 21) == [401] * 20 + [429]
    # The app did take the address from the proxy: another client, 127.0.0.3, counts apart
    # (the proxy's own connections all come from 127.0.0.1).
    assert logins(proxy, "127.0.0.3", 1, rotate=False) == [401]


@pytest.mark.pattern("DP05", "HD03")
def test_a_20_mb_body_through_the_proxy_is_answered_with_a_readable_413(stack: tuple[str, str]) -> None:
    proxy, _ = stack
    status, answer = urllib_post(f"{proxy}/api/v1/predictions/batch", batch_of(TWENTY_MB))
    assert status == 413
    assert str(answer["detail"]).startswith("request body over the limit")


@pytest.mark.pattern("DP05", "HD02")
def test_answers_through_the_proxy_keep_the_apps_headers_and_name_no_version(stack: tuple[str, str]) -> None:
    proxy, _ = stack
    answer = httpx.get(f"{proxy}/api/v1/health")
    assert answer.headers["server"] == "nginx"  # the proxy's, without its version; uvicorn's is off
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "x-request-id" in answer.headers


@pytest.mark.pattern("DP05", "AU06")
def test_without_a_proxy_the_entrypoint_believes_no_forwarded_address(database_url: str) -> None:
    """FORWARDED_ALLOW_IPS unset: uvicorn reads no X-Forwarded-For at all."""
    from tests.support import scratch_database

    with scratch_database(database_url, "direct") as url, app_by_its_entrypoint(url) as app:
        assert logins(app, "127.0.0.1", 21) == [401] * 20 + [429]
        assert "server" not in httpx.get(f"{app}/api/v1/health").headers


# --8<-- [end:proxy_tests]
