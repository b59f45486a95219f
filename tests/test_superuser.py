"""`python3 tasks.py create-superuser` and the local SECRET_KEY that `serve` makes, on PostgreSQL."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

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
