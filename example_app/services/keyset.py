"""Opaque keyset cursors: the (created_at, id) of the last row a page showed.

Clients get a token, not a page number: they cannot forge positions that skip the index, and the
encoding can change without breaking them (a token they kept becomes a clear 422, not a wrong page).
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import NamedTuple


class Keyset(NamedTuple):
    created_at: datetime
    id: int


def encode_cursor(key: Keyset) -> str:
    raw = f"{key.created_at.isoformat()}|{key.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Keyset:
    """The position a cursor names; ValueError for anything this API did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created_at, _, row_id = raw.partition("|")
        key = Keyset(datetime.fromisoformat(created_at), int(row_id))
        key.created_at.astimezone(UTC)  # year 1 at +05:00 is in no year UTC: asyncpg could not send it
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise ValueError("not a cursor this API gave out") from None
    if key.created_at.tzinfo is None or not 0 < key.id < 2**63:
        raise ValueError("not a cursor this API gave out")
    return key
