"""Passwords (Argon2 through pwdlib) and access tokens (JWT through pyjwt).

Plain passwords and hashes never leave the server; tokens carry a user id and an expiry, signed
with SECRET_KEY.
"""

from datetime import UTC, datetime, timedelta

import jwt
from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from example_app.core.config import get_settings, signing_key

# --8<-- [start:hashing]
# Argon2id with the library's defaults: 64 MiB of memory, 3 passes, 4 lanes per hash.
_hasher = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    # CPU- and memory-bound (a large fraction of a second of CPU by design): never on the event loop.
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return _hasher.verify(password, hashed)


# Verified against when an email is unknown, so that a login costs one hash either way.
DUMMY_HASH = hash_password("not a password: the hash a login verifies when the email is unknown")

# One limiter per event loop (anyio keeps its own default thread limiter the same way).
_hashing_slots: RunVar[CapacityLimiter] = RunVar("password_hashing_slots")


def hashing_slots() -> CapacityLimiter:
    try:
        return _hashing_slots.get()
    except LookupError:
        slots = CapacityLimiter(get_settings().PASSWORD_HASH_CONCURRENCY)
        _hashing_slots.set(slots)
        return slots


async def hash_password_async(password: str) -> str:
    """In a worker thread, at most PASSWORD_HASH_CONCURRENCY at once; the rest wait their turn."""
    return await to_thread.run_sync(hash_password, password, limiter=hashing_slots())


async def verify_password_async(password: str, hashed: str) -> bool:
    return await to_thread.run_sync(verify_password, password, hashed, limiter=hashing_slots())


# --8<-- [end:hashing]


# --8<-- [start:tokens]
ALGORITHM = "HS256"  # one algorithm, fixed: a token cannot choose how it is checked


def create_access_token(user_id: int, lifetime: timedelta | None = None) -> str:
    settings = get_settings()
    now = datetime.now(UTC)
    expires = now + (lifetime if lifetime is not None else timedelta(minutes=settings.ACCESS_TOKEN_MINUTES))
    claims = {"sub": str(user_id), "iat": now, "exp": expires}  # JWT wants `sub` as a string
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


def user_id_from_token(token: str) -> int | None:
    """The user id a valid token names; None when it is malformed, forged or expired."""
    try:
        claims = jwt.decode(
            token, signing_key(get_settings()), algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
        return int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError):
        return None


# --8<-- [end:tokens]
