"""Each app process follows the model aliases: LISTEN for a switch, and poll as a safety net.

Both, because neither alone bounds the switch time. A NOTIFY reaches every listening process
within milliseconds of the commit, but it reaches only connections listening at that moment: one
sent while this process reconnects (a database restart, a network blip) is lost, and behind a
transaction pooler (PgBouncer) LISTEN does not work at all. The poll re-reads the aliases every
MODEL_POLL_SECONDS whatever was heard, so a missed notification delays a switch by at most that.
The listener holds one connection of its own per process (outside the pool; the connection
budget counts it), as a LISTEN needs a session that stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from example_app.ml.registry import ModelRegistry
from example_app.models.model_version import ALIASES_CHANNEL

log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]
RECONNECT_SECONDS = 1.0  # first wait before reconnecting; doubles up to the poll interval


# --8<-- [start:watcher]
class AliasWatcher:
    def __init__(self, registry: ModelRegistry, connect: Connect | None, poll_seconds: float) -> None:
        self.registry = registry
        self.connect = connect  # None: no LISTEN (behind a pooler), the poll alone
        self.poll_seconds = poll_seconds
        self.listening = False
        self._wake = asyncio.Event()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._wake.set()  # refresh in the loop below: a callback must not block

    async def run(self) -> None:
        """Until cancelled: refresh on every NOTIFY and every `poll_seconds` in any case."""
        backoff = RECONNECT_SECONDS
        while True:
            connection = await self._listen() if self.connect is not None else None
            if connection is not None:
                backoff = RECONNECT_SECONDS
            try:
                await self.registry.refresh()  # what changed while nobody listened
                while connection is None or not connection.is_closed():
                    retrying = connection is None and self.connect is not None
                    timeout = min(backoff, self.poll_seconds) if retrying else self.poll_seconds
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
                    self._wake.clear()
                    await self.registry.refresh()
                    if retrying:
                        backoff = min(backoff * 2, self.poll_seconds)
                        break  # try to listen again
            finally:
                self.listening = False
                if connection is not None:
                    connection.terminate()  # no goodbye round trip: it may be dead already

    async def _listen(self) -> asyncpg.Connection | None:
        assert self.connect is not None
        try:
            connection = await self.connect()
            await connection.add_listener(ALIASES_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning(
                "model aliases: cannot LISTEN (%s); polling every %g s", type(exc).__name__, self.poll_seconds
            )
            return None
        # A lost connection wakes the loop, which reconnects (and re-reads what it missed).
        connection.add_termination_listener(lambda _connection: self._wake.set())
        self.listening = True
        return connection


# --8<-- [end:watcher]
