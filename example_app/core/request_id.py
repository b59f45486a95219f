"""The request id: one key for a request's log lines, its error body and its prediction rows.

Held in a context variable while the request runs (set by `api/request_id.py`'s middleware), so
a log record, an error handler or a service reads it without being handed it.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
# What an inbound id may be: 1 to 64 of these characters. Anything else (too long, a newline, a
# quote, non-ASCII) is replaced, never echoed: it ends up in headers, JSON and log lines.
WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accept(inbound: str | None) -> str:
    """The client's id when it is well formed (a proxy's, a caller's retry), else a new one."""
    if inbound is not None and WELL_FORMED.fullmatch(inbound):
        return inbound
    return uuid.uuid4().hex  # 32 characters, random: unique without coordination


class RequestIdFilter(logging.Filter):
    """Puts `request_id` on every record ("-" outside a request): `%(request_id)s` in a format,
    a field of its own in a JSON line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current.get() or "-"
        return True
