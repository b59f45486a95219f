"""`python3 tasks.py create-superuser` and the local SECRET_KEY that `serve` makes, on PostgreSQL."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from example_app.core.config import MIN_SECRET_KEY_LENGTH, NEW_KEY_HINT
from example_app.core.security import verify_password
from tests.support import ROOT, sync_url


def create_superuser(
    database_url: str, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "tasks.py", "create-superuser", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "POSTGRES_PROVIDER": "url", **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def account(database_url: str, email: str) -> tuple[bool, bool, str] | None:
    engine = create_engine(sync_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT is_superuser, is_active, hashed_password FROM users WHERE email = :e"),
                {"e": email},
            ).one_or_none()
    finally:
        engine.dispose()
    return None if row is None else (row[0], row[1], row[2])


@pytest.mark.system("python3 tasks.py create-superuser as a process")
@pytest.mark.pattern("AU03")
def test_create_superuser_from_a_script_then_again(scratch_url: str) -> None:
    made = create_superuser(
        scratch_url, "--email", "Root@Example.com", SUPERUSER_PASSWORD="long enough secret"
    )
    assert made.returncode == 0, made.stderr
    assert "superuser root@example.com created" in made.stdout
    found = account(scratch_url, "root@example.com")  # the task migrated the empty database first
    assert found is not None
    is_superuser, is_active, hashed = found
    assert (is_superuser, is_active) == (True, True)
    assert verify_password("long enough secret", hashed)

    again = create_superuser(scratch_url, "--email", "root@example.com", SUPERUSER_PASSWORD="another one!")
    assert again.returncode == 0, again.stderr
    assert "already had an account" in again.stdout
    assert account(scratch_url, "root@example.com") == found  # the password did not change


@pytest.mark.system("python3 tasks.py create-superuser at a terminal prompt")
@pytest.mark.pattern("AU03")
def test_create_superuser_asks_for_the_password_twice(scratch_url: str) -> None:
    # Without a terminal, getpass reads the answers from standard input (and warns about echo).
    differ = create_superuser(scratch_url, "--email", "a@example.com", stdin="long enough\nsomething else\n")
    assert differ.returncode == 1
    assert differ.stderr.strip().splitlines()[-1] == "create-superuser: the two passwords differ"
    short = create_superuser(scratch_url, "--email", "a@example.com", stdin="short\nshort\n")
    assert short.returncode == 1
    assert short.stderr.strip().splitlines()[-1].startswith("create-superuser: password: String should have")
    assert account(scratch_url, "a@example.com") is None
    made = create_superuser(scratch_url, "--email", "a@example.com", stdin="long enough\nlong enough\n")
    assert made.returncode == 0, made.stderr
    assert account(scratch_url, "a@example.com") is not None


@pytest.mark.system("python3 tasks.py serve as a process")
@pytest.mark.pattern("AU05")
def test_serve_makes_a_local_key_once_and_git_ignores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks

    key_file = tmp_path / ".secret_key"
    monkeypatch.setattr(tasks, "SECRET_KEY_FILE", key_file)
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.chdir(tmp_path)  # no .env file here
    tasks._local_secret_key()
    first = os.environ["SECRET_KEY"]
    assert len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    monkeypatch.delenv("SECRET_KEY")
    tasks._local_secret_key()
    assert os.environ["SECRET_KEY"] == first  # made once, then reused across restarts
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    tasks._local_secret_key()
    assert os.environ["SECRET_KEY"] == "k" * 40  # a key you set always wins
    ignored = subprocess.run(["git", "check-ignore", "-q", ".secret_key"], cwd=ROOT, check=False)
    assert ignored.returncode == 0  # never committed by accident


# `python3 tasks.py serve` as typed, with its database, migrations and servers stood in for:
# what it decides before they would start. The stand-in server prints the SECRET_KEY it was given.
SERVE = """
import contextlib, json, os, pathlib
import tasks

@contextlib.contextmanager
def database(announce=True):  # as the real one: DATABASE_URL, else the embedded server's URL
    os.environ.setdefault("DATABASE_URL", "postgresql+asyncpg://app@localhost/app")
    yield os.environ["DATABASE_URL"]

tasks._database = database
tasks._alembic = lambda c, args: None
tasks._run_until_signalled = lambda cmd, alongside: print(json.dumps(os.environ.get("SECRET_KEY")))
tasks.SECRET_KEY_FILE = pathlib.Path(".secret_key")
tasks.Program(namespace=tasks.ns).run(["tasks.py", "serve"])
"""


def serve(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run serve in cwd (no .env there), without DATABASE_URL or SECRET_KEY unless given."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "-c", SERVE],
        cwd=cwd,
        env={**inherited, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.system("python3 tasks.py serve as a process")
@pytest.mark.pattern("AU05")
def test_serve_makes_a_key_only_for_the_embedded_database(tmp_path: Path) -> None:
    embedded, own = tmp_path / "embedded", tmp_path / "own"
    embedded.mkdir()
    own.mkdir()
    made = serve(embedded)  # no DATABASE_URL: the embedded server
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == (embedded / ".secret_key").read_text().strip()
    assert "made a SECRET_KEY" in made.stderr

    yours = serve(own, DATABASE_URL="postgresql+asyncpg://app@db.example.com/app")
    assert yours.returncode == 0, yours.stderr
    assert json.loads(yours.stdout) is None  # a server of your own needs a key of yours (the app says so)
    assert not (own / ".secret_key").exists()


@pytest.mark.system("python3 tasks.py serve as a process")
@pytest.mark.pattern("AU05")
def test_serve_with_a_short_key_stops_in_one_line(tmp_path: Path) -> None:
    short = "k" * (MIN_SECRET_KEY_LENGTH - 1)
    refused = serve(tmp_path, SECRET_KEY=short)
    assert refused.returncode == 1
    assert refused.stdout == ""  # no server started
    assert refused.stderr.strip() == (  # the app's own refusal, word for word (tests/test_settings.py)
        f"Invalid settings: SECRET_KEY is too short: use at least {MIN_SECRET_KEY_LENGTH} characters "
        f"({NEW_KEY_HINT})"
    )
    assert not (tmp_path / ".secret_key").exists()
