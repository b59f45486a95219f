"""Run the project's commands as a reader would, and give tests a throwaway copy of alembic/.

Tests that create revisions (autogenerate, two heads and their merge) work on a copy of the
migrations folder with an alembic.ini pointing at it: the repository is never changed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from alembic.config import CommandLine, Config

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


@dataclass(frozen=True)
class Ran:
    """What a command printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str


def alembic(args: list[str], database_url: str, check: bool = True) -> Ran:
    """`alembic <args>` as its command line runs them (argument parsing, the command, its output
    and its exit status on an error), in this process, on `database_url`."""
    cli = CommandLine(prog="alembic")
    options = cli.parser.parse_args(args)
    _, ini = cli._inis_from_config(options)
    out, err = io.StringIO(), io.StringIO()
    cfg = Config(file_=ROOT / ini, ini_section=options.name, cmd_opts=options, stdout=out)
    cfg.attributes.update(database_url=database_url, configure_logger=False)
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.run_cmd(cfg, options)
        except SystemExit as exit:  # alembic's "FAILED: ...", or env.py's one line
            if isinstance(exit.code, str):  # what the interpreter prints on stderr, then exit 1
                err.write(f"{exit.code}\n")
            code = exit.code if isinstance(exit.code, int) else 1
    result = Ran(code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"alembic {' '.join(args)} failed ({code}):\n{result.stdout}\n{result.stderr}")
    return result


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
