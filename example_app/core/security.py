"""Passwords (Argon2 through pwdlib) and access tokens (JWT through pyjwt).

Plain passwords and hashes never leave the server; tokens carry a user id and an expiry, signed
with SECRET_KEY.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from anyio import CapacityLimiter, to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from example_app.core.config import Settings, signing_key

# --8<-- [start:hashing]
DUMMY_PASSWORD = "not a password: the hash a login verifies when the email is unknown"


@dataclass
class Passwords:
    """Argon2id hashing off the event loop, at most `concurrency` hashes at once per process.

    Made by the app's lifespan (the limiter belongs to its event loop), from the settings.
    """

    hasher: PasswordHash
    concurrency: int
    slots: CapacityLimiter = field(init=False)
    # Verified against when an email is unknown, so that a login costs one hash either way.
    dummy_hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.slots = CapacityLimiter(self.concurrency)
        self.dummy_hash = self.hasher.hash(DUMMY_PASSWORD)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Passwords":
        return cls(password_hasher(settings), settings.PASSWORD_HASH_CONCURRENCY)

    async def hash(self, password: str) -> str:
        # CPU- and memory-bound (a large fraction of a second of CPU by design): never on the
        # event loop; the others wait for a slot.
        return await to_thread.run_sync(self.hasher.hash, password, limiter=self.slots)

    async def verify(self, password: str, hashed: str) -> bool:
        return await to_thread.run_sync(self.hasher.verify, password, hashed, limiter=self.slots)


def password_hasher(settings: Settings) -> PasswordHash:
    """Argon2id with the settings' cost (pwdlib's defaults: 64 MiB, 3 passes, 4 lanes)."""
    return PasswordHash(
        (
            Argon2Hasher(
                memory_cost=settings.PASSWORD_HASH_MEMORY_KIB,
                time_cost=settings.PASSWORD_HASH_TIME_COST,
                parallelism=settings.PASSWORD_HASH_PARALLELISM,
            ),
        )
    )


def verify_password(password: str, hashed: str) -> bool:
    """Whether `password` matches a stored hash (whatever cost it was made with), synchronously."""
    return _verifier.verify(password, hashed)


_verifier = PasswordHash((Argon2Hasher(),))  # a hash carries its own parameters


# --8<-- [end:hashing]


# --8<-- [start:tokens]
ALGORITHM = "HS256"  # one algorithm, fixed: a token cannot choose how it is checked


def create_access_token(settings: Settings, user_id: int, lifetime: timedelta | None = None) -> str:
    now = datetime.now(UTC)
    expires = now + (lifetime if lifetime is not None else timedelta(minutes=settings.ACCESS_TOKEN_MINUTES))
    claims = {"sub": str(user_id), "iat": now, "exp": expires}  # JWT wants `sub` as a string
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


def user_id_from_token(settings: Settings, token: str) -> int | None:
    """The user id a valid token names; None when it is malformed, forged or expired."""
    try:
        claims = jwt.decode(
            token, signing_key(settings), algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
        return int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError):
        return None


# --8<-- [end:tokens]
