"""The guide, built once per test session, and served on loopback for the browser test."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.support import ROOT, BuiltSite

BASE_PATH = "fastapi-ml-guide"  # the path the site has on GitHub Pages


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """`mkdocs build --strict` into <www>/fastapi-ml-guide/; the build must succeed."""
    www = tmp_path_factory.mktemp("www")
    site = www / BASE_PATH
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    return BuiltSite(www, site, result.stderr)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site_url(built_site: BuiltSite) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1 (a thread of this process, stopped after)."""
    handler = functools.partial(_QuietHandler, directory=str(built_site.www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="docs-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{BASE_PATH}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
