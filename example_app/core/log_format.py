"""Log lines as text (the default) or as JSON objects, one a line (LOG_FORMAT=json), for the
app's loggers and uvicorn's, its access log included.

uvicorn applies `example_app/logging.json` before it imports the app (`--log-config`, in
`tasks.py serve` and the image's entry point), so its first lines are in the format too. That
file's one handler has the request id filter, and its formatter is made here.
"""

from __future__ import annotations

import json
import logging
import logging.config
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LOG_CONFIG = Path(__file__).resolve().parents[1] / "logging.json"

# --8<-- [start:formats]
LogFormat = Literal["text", "json"]
TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
FIELDS = ["asctime", "levelname", "name", "request_id", "message"]  # each line's keys, in order
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}


class LogSettings(BaseSettings):
    # Read alone, before the app's settings: uvicorn configures logging first.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    LOG_FORMAT: LogFormat = "text"


def formatter(log_format: LogFormat | None = None) -> logging.Formatter:
    """The formatter of every handler: LOG_FORMAT's, unless told which."""
    if log_format is None:
        try:
            log_format = LogSettings().LOG_FORMAT
        except ValidationError:  # text, here: the app's Settings then refuse it in one line
            log_format = "text"
    if log_format == "text":
        return logging.Formatter(TEXT)
    # A record's extra attributes become keys (an exception: exc_info); uvicorn's
    # color_message, its message with terminal colours, is left out.
    return JsonFormatter(FIELDS, rename_fields=RENAMED, reserved_attrs=[*RESERVED_ATTRS, "color_message"])


# --8<-- [end:formats]


def configure() -> None:
    """The same configuration in a process uvicorn does not start (the job worker)."""
    logging.config.dictConfig(json.loads(LOG_CONFIG.read_text()))
