"""Round trips on the wire: a TCP proxy between the app and PostgreSQL that reads what the app sends.

Every exchange that waits for the server's answer ends with a frontend message of its own: a
simple `Query` ('Q': BEGIN, ROLLBACK, a ping) or a `Sync` ('S') after a batch of the extended
protocol (Parse/Bind/Execute: a prepared statement, or its execution). Counting those is counting
round trips, whatever the driver or the ORM above it does; the SQL of each is kept, so a failing
test shows what was sent. The proxy refuses TLS (answers 'N' to an SSLRequest) so that it can read
the stream; it forwards everything else unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


@dataclass(frozen=True)
class RoundTrip:
    sql: str  # the statement text (for a batch: the statement it prepares or executes)
    prepares: bool = False  # a Parse: the statement is new to this connection (a cache miss)

    def __str__(self) -> str:
        return f"prepare: {self.sql}" if self.prepares else self.sql

    @property
    def kind(self) -> str:
        """The statement in a few words: "BEGIN", "SELECT posts JOIN users", "INSERT posts"."""
        sql = " ".join(self.sql.split())
        if not sql.strip(";"):
            return "(empty query: a ping)"
        verb = sql.split(" ", 1)[0].rstrip(";").upper()
        if verb == "SELECT":
            tables = re.findall(r"\b(?:FROM|JOIN) (\w+)", sql)
            called = re.findall(r"(\w+)\(", sql)
            what = (
                " JOIN ".join(dict.fromkeys(tables))
                if tables
                else next((f for f in called if f.lower() not in {"unnest", "count"}), "")
            )
            return f"SELECT {what}".strip()
        target = re.match(r"(?:INSERT INTO|UPDATE|DELETE FROM) (\w+)", sql, re.IGNORECASE)
        return f"{verb} {target[1]}" if target else verb


@dataclass
class _Batch:
    """The extended-protocol messages since the last Sync."""

    parsed: list[str] = field(default_factory=list)
    bound: list[str] = field(default_factory=list)


def _cstring(payload: bytes, start: int = 0) -> tuple[str, int]:
    end = payload.index(b"\0", start)
    return payload[start:end].decode(errors="replace"), end + 1


class WireCounter:
    """`with WireCounter(database_url) as wire:` connect the app to `wire.url`; `wire.trips()`."""

    def __init__(self, database_url: str) -> None:
        self.target = make_url(database_url)
        self._trips: list[RoundTrip] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._sever = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        """The same database, through the proxy."""
        return self.target.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def __enter__(self) -> WireCounter:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # --- what the tests read ---------------------------------------------------------------

    def trips(self, quiet: float = 0.15, timeout: float = 10.0) -> list[RoundTrip]:
        """The round trips since the last call, once the wire has been quiet for `quiet` s.

        Quiet first: a session may end (ROLLBACK, pool reset) after the response has been sent,
        within milliseconds: the app and this proxy are threads of one process.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() - self._last < quiet and time.monotonic() < deadline:
            time.sleep(quiet / 4)
        with self._lock:
            trips, self._trips = self._trips, []
        return trips

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[RoundTrip]]:
        """`with wire.counting() as trips:` the round trips of the block (filled in at its end)."""
        self.trips()  # whatever came before is not ours
        found: list[RoundTrip] = []
        yield found
        found.extend(self.trips())

    def sever_next(self) -> None:
        """The connection that sends the next statement is cut as it sends it, both ways: what
        the app sees when a server dies, or a network drops, in the middle of a request."""
        self._sever.set()

    # --- the proxy -------------------------------------------------------------------------

    def _record(self, trip: RoundTrip) -> None:
        with self._lock:
            self._trips.append(trip)
            self._last = time.monotonic()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self.target.host, self.target.port)

        async def backward() -> None:  # server -> app, as is
            while data := await upstream_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        pump = asyncio.create_task(backward())
        try:
            await self._forward(reader, writer, upstream_writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            upstream_writer.close()
            with contextlib.suppress(Exception):
                await pump
            writer.close()

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> None:
        # Start-up: untyped messages (length, code); TLS and GSS encryption are declined.
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            rest = await reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")
                await writer.drain()
                continue
            upstream.write(head + rest)
            break
        # --8<-- [start:counting]
        names: dict[str, str] = {}  # prepared statement name -> its SQL, per connection
        batch = _Batch()
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!i", head[1:])[0]
            payload = await reader.readexactly(length - 4)
            if kind in (b"Q", b"P", b"B") and self._sever.is_set():
                self._sever.clear()
                return  # the caller closes both sockets: the statement never arrives
            upstream.write(head + payload)
            await upstream.drain()
            if kind == b"Q":
                self._record(RoundTrip(_cstring(payload)[0].strip()))
            elif kind == b"P":
                name, at = _cstring(payload)
                sql = _cstring(payload, at)[0].strip()
                names[name] = sql
                batch.parsed.append(sql)
            elif kind == b"B":
                _portal, at = _cstring(payload)
                statement = _cstring(payload, at)[0]
                batch.bound.append(names.get(statement, statement))
            elif kind == b"S":
                sql = "; ".join(batch.bound or batch.parsed) or "(sync)"
                self._record(RoundTrip(sql, prepares=bool(batch.parsed)))
                batch = _Batch()
            elif kind == b"X":
                return
        # --8<-- [end:counting]
