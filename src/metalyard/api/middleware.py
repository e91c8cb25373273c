"""Plain ASGI middleware: cheap enough for every request."""

import json
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metalyard.api.routing import refuse_misdirected
from metalyard.schemas import REGION_HEADER

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
_REGION_HEADER = REGION_HEADER.lower().encode()
MAX_REGION_SHOWN = 64
"""A region is a Name: longer header values are cut there in the answer and the audit log."""


class RequestIdMiddleware:
    """Gives each request an id (the caller's, if well-formed), echoed in the response; and
    refuses (421) one meant for another region than this server serves.

    The region check rides on this layer's look at the headers: a request that names no
    region costs one more dictionary lookup, and a layer of its own would cost more.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(REQUEST_ID_HEADER, b"")
        request_id = given if _VALID_ID.match(given) else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, request_id)]
            await send(message)

        if _REGION_HEADER in headers:
            served = scope["app"].state.settings.region.encode("latin-1")
            # Every copy of the header, not the last one the dict kept: each must agree.
            for name, value in scope["headers"]:
                if name == _REGION_HEADER and value != served:
                    meant = value.decode("latin-1")[:MAX_REGION_SHOWN]
                    await refuse_misdirected(scope, receive, send_with_id, meant)
                    return
        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "code": "payload_too_large",
                "message": f"the request body is over the limit of {self.max_bytes} bytes",
                "details": {"limit_bytes": self.max_bytes},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
