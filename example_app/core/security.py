"""Password hashing (Argon2 through pwdlib). Plain passwords and hashes never leave the server."""

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_hasher = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    # CPU-bound (tens of milliseconds by design): call it off the event loop.
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return _hasher.verify(password, hashed)
