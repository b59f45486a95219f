"""A cap on request bodies, enforced while the body is read: 413 before anything is parsed."""

import json

import anyio
from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from example_app.api.errors import error_body

CLOSE = {"Connection": "close"}
# No route reads the body of these: nothing to count, and the most frequent requests pass as they came.
UNREAD = frozenset({"GET", "HEAD", "OPTIONS"})  # the rest of a refused body is not worth reading to the end


class BodySizeLimit:
    """Pure ASGI middleware: a declared Content-Length over the cap is refused before reading;
    a chunked (or lying) body is counted as it arrives and refused at the first byte over.

    The 413 goes out at once; the connection closes after it. A client that sends its whole body
    before it reads (urllib, http.client, many SDKs) would meet that close while still sending,
    and see `Connection reset by peer` instead of the answer, so the rest of the body is read
    and dropped first, for at most `drain_seconds` (nginx's "lingering close").
    """

    def __init__(self, app: ASGIApp, max_bytes: int, drain_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in UNREAD:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        # A client that asked `Expect: 100-continue` sends no body after a final answer.
        drain = headers.get(b"expect", b"").lower() != b"100-continue"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            if drain:
                await self._drain(receive)
            await send({"type": "http.response.body", "body": b""})
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException from reading the body as it is: a 413
                    # through the app's handlers, before validation sees a byte of it.
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, self.detail, headers=CLOSE)
            return message

        async def draining_send(message: Message) -> None:
            # The app's 413 for a body over the cap: its last part waits until the rest is read.
            last = message["type"] == "http.response.body" and not message.get("more_body", False)
            if received > self.max_bytes and drain and last:
                await send({**message, "more_body": True})
                await self._drain(receive)
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app(scope, counting_receive, draining_send)

    @property
    def detail(self) -> str:
        return f"request body over the limit of {self.max_bytes} bytes"

    async def _refuse(self, send: Send) -> None:
        """The 413, all but the end of its body (`_drain` comes before that)."""
        body = json.dumps(error_body(self.detail)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status.HTTP_413_CONTENT_TOO_LARGE,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": True})

    async def _drain(self, receive: Receive) -> None:
        """Read what the client still sends of the body and drop it, for a bounded time."""
        with anyio.move_on_after(self.drain_seconds):
            while True:
                message = await receive()  # uvicorn's buffer: one chunk, not the whole body
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return  # the client went away, or sent it all: the close is clean
