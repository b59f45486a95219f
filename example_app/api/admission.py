"""Load shedding for expensive routes: a cap on how many run at once in this process.

A 100-row prediction costs the event loop more CPU than inference itself (reading, parsing and
validating the JSON, the log's INSERT, the answer; the Serving page has the recorded figure). Under 32
clients the loop is never free: every other request, /health included, waits behind all of them.
Admitting a few at a time and answering the rest at once with 503 + Retry-After (before their
body is read) keeps the loop's queue short; the client, or the load balancer, tries again.
"""

import json
from collections.abc import Collection
from dataclasses import dataclass

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from example_app.api.errors import RETRY_AFTER_SECONDS, error_body
from example_app.api.metrics import SHED_ADMISSION


@dataclass
class AdmissionLimit:
    """How many may be in progress, and how many are: one event loop per process, no lock."""

    limit: int
    in_progress: int = 0


class Admission:
    """Pure ASGI middleware: at most `counter.limit` requests to `paths` (POST) in progress."""

    def __init__(
        self, app: ASGIApp, paths: Collection[str], counter: AdmissionLimit, shed: Counter | None = None
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.counter = counter
        self.shed = shed  # the metrics' count of shed requests, by reason

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        counter = self.counter
        if counter.in_progress >= counter.limit:
            await self._shed(send)
            return
        counter.in_progress += 1
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                counter.in_progress -= 1

        async def send_then_release(message: Message) -> None:
            # Released as the last byte of the answer is handed over, not after the app returns:
            # a client that got its answer and sends the next request finds the place free.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()

    async def _shed(self, send: Send) -> None:
        if self.shed is not None:
            self.shed.labels(SHED_ADMISSION).inc()
        detail = f"busy: {self.counter.limit} predictions in progress here; try again shortly"
        body = json.dumps(error_body(detail)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", RETRY_AFTER_SECONDS.encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
