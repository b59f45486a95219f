"""Load shedding for expensive routes: a cap on how many run at once in this process.

A 100-row prediction costs the event loop more CPU than inference itself (reading, parsing and
validating the JSON, the log's INSERT, the answer; the Serving page has the recorded figure). Under 32
clients the loop is never free: every other request, /health included, waits behind all of them.
Admitting a few at a time and answering the rest at once with 503 + Retry-After (before their
body is read) keeps the loop's queue short; the client, or the load balancer, tries again.

With micro-batching (services/micro_batch.py) the unit is a place, not a request: a batch request
takes a whole place, and a single prediction 1/`per_slot` of one, since up to `per_slot` of them
(MODEL_BATCH_MAX_ROWS) share one inference call and one INSERT. Counting each single as a whole
place would admit one at a time, and a batch of one is no batch.
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
    """How many places, and how many shares of them are taken: one event loop per process, no lock."""

    limit: int  # places: PREDICTION_MAX_IN_PROGRESS
    per_slot: int = 1  # shares of a place: how many single predictions one place admits
    in_progress: int = 0  # shares taken
    singles: int = 0  # of them, by single predictions: the micro-batcher stops waiting when all are in

    def admits(self, shares: int) -> bool:
        return self.in_progress + shares <= self.limit * self.per_slot


class Admission:
    """Pure ASGI middleware: POSTs to `paths` take a place (a share of one for `shared` paths)
    while in progress; one that finds no room left is answered 503 at once."""

    def __init__(
        self,
        app: ASGIApp,
        paths: Collection[str],
        counter: AdmissionLimit,
        shed: Counter | None = None,
        shared: Collection[str] = (),
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.shared = frozenset(shared)  # the micro-batched path: one share each, not a place
        self.counter = counter
        self.shed = shed  # the metrics' count of shed requests, by reason

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        counter = self.counter
        single = scope["path"] in self.shared
        shares = 1 if single else counter.per_slot
        if not counter.admits(shares):
            await self._shed(send)
            return
        counter.in_progress += shares
        counter.singles += single
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                counter.in_progress -= shares
                counter.singles -= single

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
