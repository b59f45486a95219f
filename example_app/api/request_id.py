"""Pure ASGI middleware: each request gets its id (core/request_id.py) before anything else
runs, and every answer carries it in X-Request-ID, an error or a shed request included."""

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from example_app.core import request_id


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = dict(scope["headers"]).get(request_id.HEADER.lower().encode())
        rid = request_id.accept(inbound.decode("latin-1") if inbound is not None else None)
        header = (request_id.HEADER.lower().encode(), rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.current.set(rid)
        trace.get_current_span().set_attribute("request.id", rid)  # no-op unless a span records
        await self.app(scope, receive, send_with_id)
        # Not reset after an exception: the 500's handler and uvicorn's traceback line, both
        # outside this middleware, still belong to the request (each request is a task of its own).
        request_id.current.reset(token)
