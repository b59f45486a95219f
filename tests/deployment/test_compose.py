"""DP05: deploy/compose.yaml wires the images this repository builds the way the tests run them,
and the stack it describes serves.

The app reaches PostgreSQL through PgBouncer with the settings that make asyncpg work there, and
migrates directly (the migration lock is a session's); the job worker connects directly (it
LISTENs); PgBouncer's container is configured like devtools/pgbouncer.py, which the DP02 tests run.
Clients reach the app through the proxy only, whose address is the one the app believes
X-Forwarded-For from (tests/deployment/test_proxy.py runs both entry points on this machine), and
every service is restarted when it exits. The last test brings the stack up with docker-compose
and uses it: where there is no Docker engine it is skipped, except where REQUIRE_DOCKER is set
(CI sets it): there it fails.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML (mkdocs uses it); no stubs pinned
from sqlalchemy.engine import make_url

from devtools.app_image import APP_TAG, BASE_TAG, PGBOUNCER_TAG, PROXY_TAG
from devtools.pgbouncer import config
from devtools.postgres_provider import DEFAULT_IMAGE, free_port
from tests.deployment.test_proxy import seconds_until_closed
from tests.support import PASSWORD, ROOT

pytestmark = pytest.mark.system("a Docker engine runs the compose stack")

DEPLOY = ROOT / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def settings(ini: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+) = ?(.*)$", ini, flags=re.MULTILINE))


@pytest.mark.pattern("DP05")
def test_the_services_use_the_images_this_repository_builds() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "pgbouncer", "app", "worker", "proxy"}
    assert services["db"]["image"] == DEFAULT_IMAGE  # python3 tasks.py docker-image
    assert services["app"]["image"] == services["worker"]["image"] == APP_TAG  # tasks.py app-image
    for name, tag in (("pgbouncer", PGBOUNCER_TAG), ("proxy", PROXY_TAG)):  # tasks.py app-image too
        assert services[name]["build"]["args"]["BASE"] == BASE_TAG
        assert services[name]["image"] == tag
        assert (DEPLOY / services[name]["build"]["context"] / "Dockerfile").exists()
    assert (services["app"]["command"], services["worker"]["command"]) == (["app"], ["worker"])


@pytest.mark.pattern("DP05")
def test_every_service_is_restarted_when_it_exits() -> None:
    for name, service in compose()["services"].items():
        assert service.get("restart") == "unless-stopped", name


@pytest.mark.pattern("DP05", "AU06")
def test_clients_reach_the_app_through_the_proxy_whose_address_alone_it_believes() -> None:
    services = compose()["services"]
    app, proxy = services["app"], services["proxy"]
    assert "ports" not in app  # no way around the proxy
    assert [port.rsplit(":", 1)[1] for port in proxy["ports"]] == ["8080"]
    assert proxy["environment"]["UPSTREAM"] == "app:8000"
    proxy_address = proxy["networks"]["edge"]["ipv4_address"]
    assert app["environment"]["FORWARDED_ALLOW_IPS"] == proxy_address
    assert "edge" in app["networks"]
    assert set(proxy["networks"]) == {"edge"}
    assert "FORWARDED_ALLOW_IPS" in (DEPLOY / "entrypoint.sh").read_text()


@pytest.mark.pattern("DP05")
def test_the_app_goes_through_pgbouncer_and_everything_else_direct() -> None:
    services = compose()["services"]
    app, worker = services["app"]["environment"], services["worker"]["environment"]
    assert make_url(app["DATABASE_URL"]).host == "pgbouncer"
    assert make_url(app["DATABASE_URL"]).port == 6432
    assert app["DB_BEHIND_POOLER"] == "true"  # statement caches off, unique statement names
    assert make_url(app["MIGRATION_DATABASE_URL"]).host == "db"  # the advisory lock needs a session
    assert make_url(worker["DATABASE_URL"]).host == "db"  # LISTEN needs a session too
    assert "MIGRATION_DATABASE_URL" in (DEPLOY / "entrypoint.sh").read_text()


@pytest.mark.pattern("DP05")
def test_pgbouncer_in_the_container_is_configured_like_the_tests_one() -> None:
    script = (DEPLOY / "pgbouncer" / "entrypoint.sh").read_text()
    container = settings(script)
    tested = settings(config("postgresql+asyncpg://app:x@db:5432/app", 6432, 20, Path("/tmp/log")))
    for key in ("pool_mode", "ignore_startup_parameters", "server_reset_query", "max_client_conn"):
        assert container[key] == tested[key], key
    assert container["listen_port"] == "6432"


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("no docker-compose: python3 tasks.py test installs it where Docker runs")


PROXY_TIMEOUT = 10  # the proxy's HEADER_TIMEOUT in compose.yaml
HALF_SENT = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"  # headers that never end


def container(compose: list[str], env: dict[str, str], service: str) -> str:
    ids = subprocess.run([*compose, "ps", "-q", service], env=env, capture_output=True, text=True)
    return ids.stdout.strip()


def search(base: str, words: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = httpx.get(f"{base}/posts/search", params={"q": words}, headers=auth).json()
    return hits


def inspect(container_id: str, template: str) -> str:
    answer = subprocess.run(
        ["docker", "inspect", "-f", template, container_id], capture_output=True, text=True
    )
    return answer.stdout.strip()


# --8<-- [start:stack_test]
@pytest.mark.pattern("DP05")
def test_the_stack_serves_through_pgbouncer_and_its_worker_embeds_posts(image: str) -> None:
    port, project = free_port(), f"fmlg-test-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "APP_PORT": str(port),
    }
    compose = [*compose_command(), "-f", str(DEPLOY / "compose.yaml"), "-p", project]
    up = subprocess.run(
        [*compose, "up", "-d", "--build"], env=env, capture_output=True, text=True, timeout=600
    )
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            logs = subprocess.run([*compose, "logs", "--tail", "30"], env=env, capture_output=True, text=True)
            assert time.monotonic() < deadline, f"not ready within 180 s: {logs.stdout[-3000:]}"
            time.sleep(1)
        body = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
        assert httpx.post(f"{base}/users", json=body).status_code == 201  # a write through PgBouncer
        form = {"username": body["email"], "password": PASSWORD}
        auth = {
            "Authorization": f"Bearer {httpx.post(f'{base}/auth/token', data=form).json()['access_token']}"
        }
        post = httpx.post(f"{base}/posts", json={"title": "Cats and dogs", "body": "Pets."}, headers=auth)
        assert post.status_code == 201
        deadline = time.monotonic() + 60  # the worker embeds the new post, then search finds it
        while not (found := httpx.get(f"{base}/posts/search", params={"q": "animals"}, headers=auth).json()):
            assert time.monotonic() < deadline, "the job worker did not embed the post within 60 s"
            time.sleep(0.5)
        assert found[0]["id"] == post.json()["id"]
        prediction = httpx.post(f"{base}/predictions", json={"pixels": [0.0] * 64}, headers=auth)
        assert prediction.status_code == 200

        # The proxy: it closes a half-sent request, and a client that names another address in
        # every X-Forwarded-For still meets the per-address login limit.
        assert seconds_until_closed(f"http://127.0.0.1:{port}", HALF_SENT, patience=20) < PROXY_TIMEOUT + 3
        guesses = [
            httpx.post(
                f"{base}/auth/token",
                data={"username": f"victim{n}@example.com", "password": "guess"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(41)
        ]
        # Each of the two uvicorn workers counts for itself (in memory): 20 each, the login above
        # included, at most.
        assert set(guesses[:19]) == {401}
        assert 429 in guesses
        assert httpx.get(f"{base}/health").headers["server"] == "nginx"  # not uvicorn, no version

        # A worker that dies is started again (restart: unless-stopped), and takes the queue.
        worker = container(compose, env, "worker")
        os.kill(int(inspect(worker, "{{.State.Pid}}")), signal.SIGKILL)  # a crash, not a stop
        deadline = time.monotonic() + 60
        while inspect(worker, "{{.RestartCount}} {{.State.Running}}") != "1 true":
            assert time.monotonic() < deadline, "the worker was not restarted within 60 s"
            time.sleep(0.5)
        later = httpx.post(f"{base}/posts", json={"title": "Parrots", "body": "Birds."}, headers=auth).json()
        deadline = time.monotonic() + 60
        while later["id"] not in [hit["id"] for hit in search(base, "birds", auth)]:
            assert time.monotonic() < deadline, "the restarted worker did not embed the post within 60 s"
            time.sleep(0.5)
    finally:
        subprocess.run([*compose, "down", "-v", "--timeout", "30"], env=env, capture_output=True, timeout=300)


# --8<-- [end:stack_test]
