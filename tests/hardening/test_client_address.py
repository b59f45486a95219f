"""AU06 as served: the per-address login limit counts the address the connection comes from.

uvicorn rewrites the client's address from X-Forwarded-For when the connection comes from an
address it trusts, by default 127.0.0.1. Without a proxy in front, that lets a local client name
a new address on every attempt. `python3 tasks.py serve` starts uvicorn with flags that trust no
one (and that drop its `server: uvicorn` header); the container's entry point trusts the proxy
of deploy/compose.yaml only (tests/deployment/test_proxy.py).
"""

from __future__ import annotations

import httpx
import pytest

import tasks
from example_app.core.config import Settings
from tests.support import CHEAP_HASHING, served_app, served_in_thread


def logins_from_rotating_addresses(url: str, attempts: int = 21) -> list[int]:
    """One guess at each of `attempts` accounts, each request claiming another client address."""
    statuses = []
    for n in range(attempts):
        response = httpx.post(
            f"{url}/api/v1/auth/token",
            data={"username": f"victim{n}@example.com", "password": "guess"},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        )
        statuses.append(response.status_code)
    return statuses


@pytest.mark.pattern("AU06")
def test_serve_believes_no_forwarded_address_and_does_not_name_its_server(database_url: str) -> None:
    cheap = {name: str(value) for name, value in CHEAP_HASHING.items()}
    with served_app(database_url, None, tasks.SERVE_UVICORN_FLAGS, **cheap) as app:
        statuses = logins_from_rotating_addresses(app.url)
        health = httpx.get(f"{app.url}/api/v1/health")
    assert statuses == [401] * 20 + [429]  # LOGIN_ATTEMPTS_PER_ADDRESS: 20/minute, from one address
    assert "server" not in health.headers


@pytest.mark.pattern("AU06")
def test_uvicorns_defaults_believe_any_address_a_local_client_names(settings: Settings) -> None:
    """What the flags prevent: uvicorn as it starts without them (`uvicorn example_app.main:app`)."""
    from example_app.main import create_app

    with served_in_thread(create_app(settings), proxy_headers=True, server_header=True) as url:
        statuses = logins_from_rotating_addresses(url)
        health = httpx.get(f"{url}/api/v1/health")
    assert statuses == [401] * 21  # 21 "addresses", one attempt each: the limit never counts twice
    assert health.headers["server"] == "uvicorn"
