"""Settings come from the environment; a bad value stops start-up with one readable line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from example_app.core.config import MIN_SECRET_KEY_LENGTH, Settings
from example_app.main import create_app
from tests.support import ROOT

A_KEY = "k" * MIN_SECRET_KEY_LENGTH


@dataclass(frozen=True)
class Start:
    returncode: int
    stderr: str


StartApp = Callable[..., Start]


@pytest.fixture
def start_app(monkeypatch: pytest.MonkeyPatch) -> StartApp:
    """Make the app as `uvicorn example_app.main:app` does at start-up, from exactly `env`, in
    this process: a SystemExit is what the interpreter prints on stderr, with exit status 1."""

    def start(env: dict[str, str], key: str | None = A_KEY) -> Start:
        for name in Settings.model_fields:  # the suite's own DATABASE_URL, SECRET_KEY...: not here
            monkeypatch.delenv(name, raising=False)
        for name, value in {**({"SECRET_KEY": key} if key is not None else {}), **env}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(ROOT / "tests")  # away from any .env file in the project root
        try:
            create_app()
        except SystemExit as stop:
            return Start(1, f"{stop.code}\n")
        return Start(0, "")

    return start


@pytest.mark.system("a fresh interpreter, as uvicorn imports the app")
@pytest.mark.pattern("S07", "AU05")
def test_a_settings_error_is_one_line_on_stderr_and_exit_status_1() -> None:
    """What the in-process tests below read from SystemExit is what a process prints."""
    result = subprocess.run(
        [sys.executable, "-c", "import example_app.main"],
        env={  # this process's environment but for its settings: those are the test's
            **{name: value for name, value in os.environ.items() if name not in Settings.model_fields},
            "SECRET_KEY": A_KEY,
            "DATABASE_URL": "postgresql://u@h/db",
        },
        cwd=ROOT / "tests",  # away from any .env file in the project root
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Invalid settings: DATABASE_URL driver 'postgresql' is not supported; use postgresql+asyncpg://...\n"
    )


# --8<-- [start:settings_errors]
@pytest.mark.pattern("S07", "E22")
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        ("postgresql://u:p@localhost/db", "driver 'postgresql' is not supported; use postgresql+asyncpg://"),
        ("postgresql+psycopg2://u:p@localhost/db", "driver 'postgresql+psycopg2' is not supported"),
        ("postgresql+asyncpg://u:p@localhost", "the URL names no database"),
    ],
)
def test_bad_database_url_fails_fast_with_one_line(start_app: StartApp, url: str, message: str) -> None:
    result = start_app({"DATABASE_URL": url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one readable line, no traceback
    assert lines[0].startswith("Invalid settings: DATABASE_URL ")
    assert message in lines[0]


# --8<-- [end:settings_errors]


@pytest.mark.pattern("S07")
def test_missing_database_url_names_the_variable(start_app: StartApp) -> None:
    result = start_app({})
    assert result.returncode == 1
    assert result.stderr.strip() == "Invalid settings: DATABASE_URL is not set"


@pytest.mark.pattern("S07")
def test_bad_numeric_setting_is_reported_by_name(start_app: StartApp) -> None:
    result = start_app({"DATABASE_URL": "postgresql+asyncpg://u@h/db", "DB_POOL_SIZE": "0"})
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Invalid settings: DB_POOL_SIZE ")


@pytest.mark.pattern("E22")
def test_password_with_special_characters_round_trips() -> None:
    """URL.create() escapes what a hand-written URL would break on (@, /, :, %)."""
    from sqlalchemy.engine import URL

    password = "p@ss/w:rd%"
    url = URL.create("postgresql+asyncpg", "app", password, "db.internal", 5432, "app")
    settings = Settings(DATABASE_URL=url.render_as_string(hide_password=False))
    assert settings.database_url.password == password
    assert settings.database_url.host == "db.internal"


@pytest.mark.pattern("E23", "S07")
def test_settings_use_pydantic_settings_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic_settings import BaseSettings

    assert issubclass(Settings, BaseSettings)
    monkeypatch.setenv("DEBUG", "true")
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    settings = Settings()
    assert settings.DEBUG is True
    assert settings.DB_POOL_SIZE == 3


# --8<-- [start:secret_key_tests]
@pytest.mark.pattern("AU05")
def test_no_secret_key_no_start(start_app: StartApp) -> None:
    result = start_app({"DATABASE_URL": "postgresql+asyncpg://u@h/db"}, key=None)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Invalid settings: SECRET_KEY is not set; "
        "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )


@pytest.mark.pattern("AU05")
@pytest.mark.parametrize("key", ["", "changeme", "k" * (MIN_SECRET_KEY_LENGTH - 1)])
def test_a_short_secret_key_stops_start_up_in_one_line(start_app: StartApp, key: str) -> None:
    result = start_app({"DATABASE_URL": "postgresql+asyncpg://u@h/db"}, key=key)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Invalid settings: SECRET_KEY is too short: use at least 32 characters")
    if key:
        assert key not in line  # the value itself is never echoed


@pytest.mark.pattern("AU05")
def test_the_key_has_no_default_and_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY")
    assert Settings(_env_file=None).SECRET_KEY is None  # nothing in code
    settings = Settings(SECRET_KEY="s" * 40)
    assert "s" * 40 not in repr(settings)  # SecretStr: not in logs or tracebacks
    assert settings.SECRET_KEY is not None
    assert settings.SECRET_KEY.get_secret_value() == "s" * 40


# --8<-- [end:secret_key_tests]
