"""Login attempts, counted per account and per client address with the `limits` library."""

from __future__ import annotations

import time

from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from example_app.core.config import Settings


class LoginLimiter:
    """Counts each attempt before the password is checked, so parallel guesses count too.

    Per account, a successful login clears the count: what is left are failures. Per address it
    does not, since the success may be the attacker's own account between two guesses at others.
    """

    def __init__(self, per_account: str, per_address: str, storage_uri: str = "async+memory://") -> None:
        self.storage = storage_from_string(storage_uri)
        self.window = MovingWindowRateLimiter(self.storage)
        self.per_account, self.per_address = parse(per_account), parse(per_address)

    async def attempt(self, account: str, address: str) -> float | None:
        """Count one attempt; None if it may go ahead, else the seconds until one may."""
        for limit, key in (
            (self.per_account, f"account:{account}"),
            (self.per_address, f"address:{address}"),
        ):
            if not await self.window.hit(limit, "login", key):
                stats = await self.window.get_window_stats(limit, "login", key)
                return max(1.0, stats.reset_time - time.time())
        return None

    async def succeeded(self, account: str) -> None:
        await self.window.clear(self.per_account, "login", f"account:{account}")

    async def reset(self) -> None:
        await self.storage.reset()  # type: ignore[misc]

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimiter:
        return cls(
            settings.LOGIN_FAILURES_PER_ACCOUNT,
            settings.LOGIN_ATTEMPTS_PER_ADDRESS,
            settings.RATE_LIMIT_STORAGE,
        )
