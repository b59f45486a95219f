"""The diagrams: drawn in the reader's browser by a vendored mermaid, each with its accessible
title and description, and the prediction's path drawn in the order the app really runs it.
(The browser test, tests/docs/test_site_browser.py, checks that each one renders, light and dark.)
"""

from __future__ import annotations

import hashlib
import re

from devtools.docs_source import iter_fences, pages
from tests.support import ROOT

MERMAID = ROOT / "docs/assets/vendor/mermaid-11.6.0"
# sha256 of dist/mermaid.min.js in the npm package mermaid@11.6.0 (`npm pack mermaid@11.6.0`)
MERMAID_SHA256 = "3a93016a73dc82ba890d919f9bbb176f3da9d98341650c0b517f2595cc68fef8"


def diagrams() -> dict[str, list[list[str]]]:
    """page -> the body of each of its mermaid blocks."""
    found: dict[str, list[list[str]]] = {}
    for page, text in pages().items():
        for fence in iter_fences(text, page):
            if fence.lang == "mermaid":
                found.setdefault(page, []).append(fence.body)
    return found


def test_mermaid_is_the_pinned_release_with_its_licence() -> None:
    assert hashlib.sha256((MERMAID / "mermaid.min.js").read_bytes()).hexdigest() == MERMAID_SHA256
    assert "MIT License" in (MERMAID / "LICENSE").read_text()
    config = (ROOT / "mkdocs.yml").read_text()
    assert "assets/vendor/mermaid-11.6.0/mermaid.min.js" in config  # loaded: Material fetches none
    assert "unpkg" not in config


def test_the_guide_draws_its_four_diagrams() -> None:
    shown = {page: len(bodies) for page, bodies in diagrams().items()}
    assert shown == {"ml/serving.md": 1, "ml/jobs.md": 1, "deployment.md": 1, "testing.md": 1}


def test_every_diagram_has_an_accessible_title_and_description() -> None:
    missing = [
        (page, n)
        for page, bodies in diagrams().items()
        for n, body in enumerate(bodies)
        if not any(re.match(r"\s*accTitle: \S", line) for line in body)
        or not any(re.match(r"\s*accDescr: .{40,}", line) for line in body)
    ]
    assert missing == []


def middleware_in_order() -> list[str]:
    """The app's middleware as a request meets it: create_app adds them, the last added first."""
    source = (ROOT / "example_app/main.py").read_text()
    return list(reversed(re.findall(r"app\.add_middleware\(\s*(\w+)", source)))


def test_the_prediction_path_draws_the_middleware_in_the_order_the_app_runs_them() -> None:
    [body] = diagrams()["ml/serving.md"]
    drawn = "\n".join(line for line in body if not line.lstrip().startswith(("accTitle", "accDescr")))
    order = middleware_in_order()
    assert order == ["RequestMetrics", "SecurityHeaders", "RequestId", "Admission", "BodySizeLimit"]
    positions = [drawn.find(name) for name in order]
    assert -1 not in positions
    assert positions == sorted(positions)
