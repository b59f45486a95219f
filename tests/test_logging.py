"""JSON logs on demand (OB05): with LOG_FORMAT=json, every line uvicorn and the app write is one
JSON object, the access log included, each with the request id of the request it is about."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alembic import command
from example_app.core.config import Settings
from example_app.core.log_format import LOG_CONFIG, TEXT
from example_app.core.request_id import HEADER
from tests.support import alembic_config, served_app, served_in_thread

KEYS = {"time", "level", "logger", "request_id", "message"}


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """uvicorn's --log-config changes this process's logging: put it back for the tests after."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    kept = [
        (lg, lg.handlers[:], lg.filters[:], lg.level, lg.propagate, lg.disabled)
        for lg in loggers
        if isinstance(lg, logging.Logger)
    ]
    try:
        yield
    finally:
        for lg, handlers, filters, level, propagate, disabled in kept:
            lg.handlers[:], lg.filters[:] = handlers, filters
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line, parsed: one that is not a JSON object fails the test, naming it."""
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]
    odd = [
        line for line, p in zip(lines, parsed, strict=True) if not (isinstance(p, dict) and p.keys() >= KEYS)
    ]
    assert odd == []
    return parsed


# --8<-- [start:json_test]
@pytest.mark.pattern("OB05")
def test_with_log_format_json_every_line_parses_the_access_log_included(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from example_app.main import create_app

    monkeypatch.setenv("LOG_FORMAT", "json")
    config = {"log_config": str(LOG_CONFIG), "log_level": None}  # as `uvicorn --log-config` has it
    with logging_restored(), served_in_thread(create_app(settings), **config) as url:
        live = httpx.get(f"{url}/api/v1/health/live", headers={HEADER: "probe-1"})
        missing = httpx.get(f"{url}/api/v1/users/999999")  # a 401 with an id of the app's making
    lines = json_lines(capsys.readouterr().err)
    access = {line["request_id"]: line for line in lines if line["logger"] == "uvicorn.access"}
    assert '"GET /api/v1/health/live HTTP/1.1" 200' in access["probe-1"]["message"]
    assert access[missing.headers[HEADER]]["message"].endswith(" 401")
    assert live.headers[HEADER] == "probe-1"
    started = [line for line in lines if line["message"] == "Application startup complete."]
    assert [line["request_id"] for line in started] == ["-"]  # outside any request
    assert any(line["logger"] == "example_app.services.model_registry" for line in lines)  # the app's


# --8<-- [end:json_test]


@pytest.mark.pattern("OB05")
def test_a_bad_log_format_is_refused_in_one_line_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from example_app.core.config import load_settings
    from example_app.core.log_format import formatter

    monkeypatch.setenv("LOG_FORMAT", "xml")
    assert formatter()._fmt == TEXT  # uvicorn's logging starts, in text...
    with pytest.raises(SystemExit) as stopped:
        load_settings()  # ...and the app stops at its settings, in one line
    assert "LOG_FORMAT" in str(stopped.value)
    assert "\n" not in str(stopped.value)


@pytest.mark.system("uvicorn's command line in a process of its own, as tasks.py serve runs it")
@pytest.mark.pattern("OB05")
def test_the_served_app_logs_json_lines_from_its_first_line(scratch_url: str, tmp_path: Path) -> None:
    command.upgrade(alembic_config(scratch_url), "head")
    log = tmp_path / "uvicorn.log"
    args = ["--log-config", "example_app/logging.json"]
    with served_app(scratch_url, log=log, args=args, LOG_FORMAT="json") as served:
        answered = httpx.get(f"{served.url}/api/v1/health/ready", headers={HEADER: "ready-1"})
    lines = json_lines(log.read_text())
    assert answered.status_code == 200
    assert any(line["message"].startswith("Started server process") for line in lines)  # uvicorn's own
    assert any(line["request_id"] == "ready-1" for line in lines if line["logger"] == "uvicorn.access")
