"""Headers that tell a browser how to treat every answer of the app, whatever produced it."""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # A JSON answer is never sniffed into HTML or a script, whatever a client claims it is.
    "X-Content-Type-Options": "nosniff",
    # A link followed from a page of the app (the docs) does not carry the app's URL along.
    "Referrer-Policy": "no-referrer",
    # An API answer opened in a browser runs nothing, loads nothing, and no site may frame it.
    # The docs pages send their own policy (api/swagger_ui.py), which this one leaves alone.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class SecurityHeaders:
    """Pure ASGI middleware: SECURITY_HEADERS on every response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
