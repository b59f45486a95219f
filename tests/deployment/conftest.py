"""The app's container image, for the DP05 tests (test_image.py, test_compose.py)."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def image() -> str:
    """The app's image, rebuilt from the working tree without network (cached layers make it
    quick) on what `python3 tasks.py app-image` prepared; `tasks.py test` runs that first.

    Without a Docker engine the test is skipped, except where REQUIRE_DOCKER is set (CI): there
    it fails, as a test that cannot run where it must.
    """
    try:
        answers = subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        answers = False
    if not answers:
        if os.environ.get("REQUIRE_DOCKER"):
            pytest.fail("REQUIRE_DOCKER is set but no Docker engine answers")
        pytest.skip("no Docker engine here: the image is built and run where one is (CI)")
    from devtools.app_image import ImageError, build

    try:
        return build(offline=True)
    except ImageError as exc:
        if os.environ.get("REQUIRE_DOCKER"):
            pytest.fail(str(exc))
        pytest.skip(f"the app's image is not prepared here: {exc}")
