"""Passwords (Argon2 through pwdlib) and access tokens (JWT through pyjwt).

Plain passwords and hashes never leave the server; tokens carry a user id and an expiry, signed
with SECRET_KEY.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from anyio import CapacityLimiter, to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from example_app.core.config import Settings, signing_key
from example_app.core.database import INT4_MAX

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
CLOCK_SKEW = timedelta(seconds=60)  # between the instance that signs and the one that checks


def create_access_token(settings: Settings, user_id: int, lifetime: timedelta | None = None) -> str:
    now = datetime.now(UTC)
    expires = now + (lifetime if lifetime is not None else timedelta(minutes=settings.ACCESS_TOKEN_MINUTES))
    claims = {"sub": str(user_id), "iat": now, "exp": expires}  # JWT wants `sub` as a string
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


class AccessClaims(BaseModel):
    """The claims as the app writes them, and nothing looser. PyJWT checks the signature and that
    `exp` has not passed, but reads `exp` with int(), which takes "1700000000" and 1.7e9 too."""

    model_config = ConfigDict(strict=True)  # no str -> int, no float -> int, no bool -> int

    sub: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,9}$")]  # digits: no sign, no space
    exp: int

    @field_validator("sub")
    @classmethod
    def _an_id_the_column_holds(cls, sub: str) -> str:
        if int(sub) > INT4_MAX:  # users.id is `integer`: asyncpg would refuse to send it
            raise ValueError("not a user id")
        return sub


def user_id_from_token(settings: Settings, token: str) -> int | None:
    """The user id a valid token names; None when it is malformed, forged, expired, or its
    claims are not the app's: a user id outside the column's range, an expiry past the lifetime."""
    try:
        payload = jwt.decode(
            token, signing_key(settings), algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
        claims = AccessClaims.model_validate(payload)
    except (jwt.InvalidTokenError, ValidationError):
        return None
    latest = datetime.now(UTC) + timedelta(minutes=settings.ACCESS_TOKEN_MINUTES) + CLOCK_SKEW
    if claims.exp > latest.timestamp():  # signed for longer than the app ever signs
        return None
    return int(claims.sub)


# --8<-- [end:tokens]
