"""The guide builds strictly: a missing snippet file or section, a broken link or anchor fails."""

from __future__ import annotations

import html as html_module
import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_mkdocs_strict_build(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    text = html_module.unescape(re.sub(r"<[^>]+>", "", html))
    assert "async def health(db: SessionDep)" in text  # the snippet was included
    assert "--8<--" not in text
