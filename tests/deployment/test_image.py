"""DP05: the app's container image, built from the repository's Dockerfile, runs healthy.

The image is built as a user builds it (`python3 tasks.py app-image`: a Debian base made by
debootstrap, the pinned wheels, `docker build`), started against the tests' PostgreSQL, and
must report itself healthy through its own HEALTHCHECK (readiness: models loaded, database
answering), as a user that is not root, then stop cleanly on SIGTERM. Without a Docker engine
the test is skipped, except where REQUIRE_DOCKER is set (CI sets it): there it fails.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import httpx
import pytest

from devtools.postgres_provider import free_port
from tests.support import NewDatabase

pytestmark = pytest.mark.system("the app's image built and run by a Docker engine")

HEALTHY_WITHIN = 240  # seconds: migrations, then the models load, then the first check passes


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


# --8<-- [start:image_test]
@pytest.mark.pattern("DP05")
def test_the_image_runs_healthy_as_a_user_and_stops_on_sigterm(image: str, new_database: NewDatabase) -> None:
    url, port = new_database(), free_port()  # an empty database: the container migrates it
    name = f"fmlg-image-test-{secrets.token_hex(4)}"
    env = {"DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(32), "PORT": str(port)}
    run = ["run", "-d", "--name", name, "--network", "host"]
    started = docker(*run, *(f"--env={k}={v}" for k, v in env.items()), image)
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + HEALTHY_WITHIN
        while (state := json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout))["Health"][
            "Status"
        ] != "healthy":
            assert state["Running"], f"the container exited: {docker('logs', name).stderr[-2000:]}"
            assert time.monotonic() < deadline, f"not healthy within {HEALTHY_WITHIN} s: {state['Health']}"
            time.sleep(1)
        healthy_after = time.monotonic() - (deadline - HEALTHY_WITHIN)
        ready = httpx.get(f"http://127.0.0.1:{port}/api/v1/health/ready", timeout=10)
        assert ready.status_code == 200
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001"  # not root
        assert docker("inspect", "-f", "{{.Config.User}}", name).stdout.strip() == "app"

        stopping = time.monotonic()
        assert docker("stop", "--time", "40", name).returncode == 0  # SIGTERM, then 40 s grace
        stopped_in = time.monotonic() - stopping
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert exit_code == "0", docker("logs", name).stderr[-2000:]
        assert stopped_in < 30
        size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout) / 2**20
        print(
            f"image {size:.0f} MiB; healthy {healthy_after:.1f} s after start, stopped in {stopped_in:.1f} s"
        )
    finally:
        docker("rm", "-f", name)


# --8<-- [end:image_test]
