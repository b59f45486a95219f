"""Run the project's commands as a reader would, and give tests a throwaway copy of alembic/.

Tests that create revisions (autogenerate, two heads and their merge) work on a copy of the
migrations folder with an alembic.ini pointing at it: the repository is never changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

PYTHON = Path(sys.executable)
ALEMBIC = PYTHON.parent / "alembic"


def run(
    args: list[str], database_url: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command from the project root with DATABASE_URL set, as the README tells a reader.

    POSTGRES_PROVIDER=url: the db.* tasks must use that URL even when the suite itself was
    started with POSTGRES_PROVIDER=local or testcontainers.
    """
    environ = {**os.environ, "DATABASE_URL": database_url, "POSTGRES_PROVIDER": "url", **(env or {})}
    result = subprocess.run(args, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def task(name: str, database_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python3 tasks.py <name>` (run with the venv's python, as the task runner re-executes itself)."""
    return run([str(PYTHON), "tasks.py", name], database_url, check)


def alembic(args: list[str], database_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`alembic <args>` from the venv, as after `source venv/bin/activate`."""
    return run([str(ALEMBIC), *args], database_url, check)


def copy_alembic(tmp_path: Path) -> Path:
    """A copy of alembic/ (env.py, template, versions) and an alembic.ini using it; returns the ini.

    `tests.support.alembic_config(url, ini=...)` aims it at a database.
    """
    shutil.copytree(ROOT / "alembic", tmp_path / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    ini = (ROOT / "alembic.ini").read_text()
    assert "script_location = %(here)s/alembic" in ini
    # The copy's scripts; everything else (the formatting hook's ruff) stays the project's.
    ini = ini.replace("%(here)s/alembic", str(tmp_path / "alembic")).replace("%(here)s", str(ROOT))
    (tmp_path / "alembic.ini").write_text(ini)
    return tmp_path / "alembic.ini"


def versions(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "versions").glob("*.py"))
