"""Programs the test suite needs beyond Python packages, and how `tasks.py test` gets them.

`python3 tasks.py test` checks, before pytest starts, each tool that the selected tests use. A
missing one is installed the way this machine allows (apt-get as root or with password-less sudo
on Debian; Playwright's own browser download for Chromium, where the network allows it), with one
line per install. When nothing can install it, the command stops before pytest with one line that
names what to run: a missing tool is never a skipped test.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")


def chromium_executable() -> str | None:
    """Debian's Chromium, else the browser Playwright downloaded into its cache, else None."""
    if SYSTEM_CHROMIUM.exists():
        return str(SYSTEM_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        bundled = Path(playwright.chromium.executable_path)
    return str(bundled) if bundled.exists() else None


def _running_as_root() -> bool:
    return os.geteuid() == 0


@functools.cache
def docker_answers() -> bool:
    """Whether a Docker engine answers this user: the image tests' tools matter only then."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _compose_plugin() -> bool:
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@dataclass(frozen=True)
class Tool:
    name: str
    apt_package: str
    present: Callable[[], bool]
    # Test paths (relative to the project root) that use the tool; () means every test.
    needed_by: tuple[str, ...] = ()
    # A way to install it without root, tried when apt-get cannot be used.
    fallback: tuple[str, ...] | None = None

    def wanted_by(self, selected: Sequence[str]) -> bool:
        """Whether any of the selected test paths (none: the whole suite) runs a test using this tool."""
        if not self.needed_by or not selected:
            return True
        return any(
            Path(user).is_relative_to(Path(p)) or Path(p).is_relative_to(Path(user))
            for user in self.needed_by
            for p in selected
        )


TOOLS = (
    Tool(
        "chromium",
        "chromium",
        lambda: chromium_executable() is not None,
        needed_by=("tests/docs/test_site_browser.py",),
        fallback=(sys.executable, "-m", "playwright", "install", "chromium"),
    ),
    Tool(
        "wrk",
        "wrk",
        lambda: shutil.which("wrk") is not None,
        needed_by=("tests/bench", "tests/hardening/test_soak.py"),
    ),
    # PgBouncer in transaction pooling mode in front of the test server (DP02).
    Tool(
        "pgbouncer",
        "pgbouncer",
        lambda: shutil.which("/usr/sbin/pgbouncer") is not None,
        needed_by=("tests/deployment/test_pgbouncer.py", "tests/bench"),
    ),
    # nginx in front of the app, as deploy/compose.yaml puts it (the proxy's own entry point).
    Tool(
        "nginx",
        "nginx",
        lambda: shutil.which("/usr/sbin/nginx") is not None,
        needed_by=("tests/deployment/test_proxy.py",),
    ),
    # The app's image (DP05) is built on a Debian base that debootstrap makes; without a Docker
    # engine that answers there is no image to build, and nothing to install.
    Tool(
        "debootstrap",
        "debootstrap",
        lambda: not docker_answers() or shutil.which("debootstrap") is not None,
        needed_by=("tests/deployment/test_image.py",),
    ),
    # The compose test brings deploy/compose.yaml up (Docker's plugin, else Debian's docker-compose).
    Tool(
        "docker-compose",
        "docker-compose",
        lambda: not docker_answers() or shutil.which("docker-compose") is not None or _compose_plugin(),
        needed_by=("tests/deployment/test_compose.py",),
    ),
    # A real Prometheus server scrapes the served app and answers the test's queries (OB02).
    Tool(
        "prometheus",
        "prometheus",
        lambda: Path("/usr/bin/prometheus").exists(),
        needed_by=("tests/test_prometheus.py",),
    ),
    # The local PostgreSQL provider drops root privileges with setpriv (PostgreSQL refuses root).
    Tool("setpriv", "util-linux", lambda: not _running_as_root() or shutil.which("setpriv") is not None),
)


def selected_paths(pytest_args: str) -> list[str]:
    """The test files or folders named in pytest's arguments (a `-k` expression names none)."""
    found = []
    for arg in shlex.split(pytest_args):
        candidate = arg.split("::")[0]
        if not arg.startswith("-") and (ROOT / candidate).exists():
            found.append(Path(ROOT / candidate).resolve().relative_to(ROOT).as_posix())
    return found


def _apt_prefix() -> list[str] | None:
    """How to call apt-get here: directly as root, through password-less sudo, or not at all."""
    if shutil.which("apt-get") is None:
        return None
    if _running_as_root():
        return []
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0:
        return [sudo, "-n"]
    return None


def _quiet(cmd: Sequence[str]) -> bool:
    """Run an installer; its output is shown only when it fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(list(cmd), capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-2000:])
    return result.returncode == 0


IMAGE_TESTS = ("tests/deployment/test_image.py", "tests/deployment/test_compose.py")


def ensure(pytest_args: str = "") -> None:
    """Install what the selected tests need, or stop with one line naming the command to run."""
    selected = selected_paths(pytest_args)
    install([tool for tool in TOOLS if tool.wanted_by(selected)])
    prepare_images(selected)


def prepare_images(selected: Sequence[str]) -> None:
    """Where a Docker engine answers, `tasks.py app-image` before the image tests: what needs the
    network (Debian's mirror, PyPI) happens here, before pytest, never in a test."""
    image_user = Tool("images", "", lambda: True, needed_by=IMAGE_TESTS)
    if not image_user.wanted_by(selected) or not docker_answers():
        return
    from devtools.app_image import ImageError, build

    try:
        build()
    except ImageError as exc:
        # debootstrap needs root and Debian's tools: elsewhere the image tests are skipped, but
        # where REQUIRE_DOCKER is set (CI) the run stops here.
        if os.environ.get("REQUIRE_DOCKER"):
            raise SystemExit(f"test: the app's image could not be built: {exc}") from None
        print(f"test: the app's image was not built ({exc}); its tests will be skipped", file=sys.stderr)


def ensure_tools(*names: str) -> None:
    """The same, for the tools a task names (`bench` needs wrk)."""
    install([tool for tool in TOOLS if tool.name in names])


def install(tools: Sequence[Tool]) -> None:
    missing = [tool for tool in tools if not tool.present()]
    apt = _apt_prefix() if missing else None
    updated = False
    for tool in missing:
        if apt is not None:
            print(f"test: installing {tool.name} (apt-get install {tool.apt_package})", file=sys.stderr)
            if not updated:
                updated = _quiet([*apt, "apt-get", "update", "-q"])
            _quiet([*apt, "apt-get", "install", "-y", "-q", "--no-install-recommends", tool.apt_package])
        elif tool.fallback:
            print(f"test: installing {tool.name} ({' '.join(tool.fallback[1:])})", file=sys.stderr)
            _quiet(tool.fallback)
        if not tool.present():
            how = f"sudo apt-get install {tool.apt_package}"
            if tool.fallback:
                how += f" (or {shlex.join(['venv/bin/python', *tool.fallback[1:]])})"
            raise SystemExit(f"test: {tool.name} is missing and could not be installed here; run: {how}")
