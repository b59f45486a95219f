"""Each app process follows the model aliases: LISTEN for a switch, and poll as a safety net.

Both, because neither alone bounds the switch time. A NOTIFY reaches every listening process
within milliseconds of the commit, but only connections listening at that moment: one sent while
this process reconnects (a database restart, a network blip) is lost, and behind a transaction
pooler (PgBouncer) LISTEN does not work at all. The poll re-reads the aliases every
MODEL_POLL_SECONDS whatever was heard, so a missed notification delays a switch by at most that.

The listener holds one connection of its own per process, outside the pool (the connection
budget counts it): a LISTEN needs a session that stays open, and the aliases are read on it too,
so following them never takes a pooled connection from a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from example_app.models.model_version import ALIASES_CHANNEL
from example_app.services.model_registry import ModelRegistry
from example_app.services.model_version import VersionRow, read_aliases, read_aliases_on

log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]
RECONNECT_SECONDS = 1.0  # first wait before listening again; doubles up to the poll interval
READ_TIMEOUT_SECONDS = 5.0
LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


# --8<-- [start:watcher]
class AliasWatcher:
    def __init__(self, registry: ModelRegistry, connect: Connect | None, poll_seconds: float) -> None:
        self.registry = registry
        self.connect = connect  # None: no LISTEN (behind a pooler), the poll alone
        self.poll_seconds = poll_seconds
        self._connection: asyncpg.Connection | None = None
        self._wake = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def start(self) -> None:
        """Listen (when it can), then load what the aliases name: done before the first request."""
        await self._listen()
        await self.registry.refresh(self._read)

    async def run(self) -> None:
        """Until cancelled: re-read on every NOTIFY, every `poll_seconds` anyway, and after
        listening again (what changed meanwhile was announced to nobody)."""
        backoff = RECONNECT_SECONDS
        try:
            while True:
                retrying = self.connect is not None and not self.listening
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff if retrying else self.poll_seconds)
                self._wake.clear()
                if self.connect is not None and not self.listening:
                    backoff = (
                        RECONNECT_SECONDS if await self._listen() else min(backoff * 2, self.poll_seconds)
                    )
                await self.registry.refresh(self._read)
        finally:
            if self._connection is not None:
                self._connection.terminate()  # no goodbye round trip: it may be dead already

    async def _listen(self) -> bool:
        if self.connect is None:
            return False
        if self._connection is not None:
            self._connection.terminate()
        self._connection = None
        try:
            connection = await self.connect()
            await connection.add_listener(ALIASES_CHANNEL, self._notified)
        except LOST as exc:
            log.warning(
                "model aliases: cannot LISTEN (%s); polling every %g s", type(exc).__name__, self.poll_seconds
            )
            return False
        # A lost connection wakes the loop at once, which listens again and re-reads.
        connection.add_termination_listener(lambda _connection: self._wake.set())
        self._connection = connection
        return True

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._wake.set()  # the loop re-reads: a callback must not block

    async def _read(self, names: list[str], aliases: list[str]) -> dict[tuple[str, str], VersionRow]:
        if self.listening:
            assert self._connection is not None
            return await read_aliases_on(self._connection, names, aliases, READ_TIMEOUT_SECONDS)
        async with self.registry.sessions() as db:  # not listening: a pooled session
            return await read_aliases(db, names, aliases)  # type: ignore[arg-type]


# --8<-- [end:watcher]
