"""Reads of the database that answer in time, for the probes and the metrics: the result, or
one line saying how the database failed, within a given number of seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


# --8<-- [start:probe]
async def probe_database(
    db: AsyncSession, read: Callable[[AsyncSession], Awaitable[T]], seconds: float
) -> tuple[T | None, str | None]:
    """`read`'s result and None, or None and one line saying how the database failed.

    Bounded: a dead or black-holed database answers quickly instead of hanging. The read runs in
    a session of its own, on db's database, so that an overrun can be left behind: cancelling it
    means closing a connection that gets no answer, which takes seconds more.
    """
    probe = asyncio.ensure_future(_in_own_session(db, read))
    done, _ = await asyncio.wait({probe}, timeout=seconds)
    if not done:
        probe.cancel()
        _overrun.add(probe)  # held until it has finished cleaning up
        probe.add_done_callback(_overrun.discard)
        return None, f"no answer within {seconds:g} s"
    if (exc := probe.exception()) is not None:  # any failure to reach the database: unavailable
        return None, f"cannot query the database ({type(exc).__name__})"
    return probe.result(), None


_overrun: set[asyncio.Future[Any]] = set()


async def _in_own_session(db: AsyncSession, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
    # Like the request's own session (get_db): a GET's has no transaction, so a read is one round trip.
    async with AsyncSession(db.bind, execution_options=db.sync_session.execution_options) as session:
        return await read(session)


# --8<-- [end:probe]
