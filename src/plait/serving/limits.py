"""The upload limit (`--max-upload-mb`), enforced as the body arrives: a request announcing a larger body is answered
413 before any of it is read, and one that sends more than it announced (or announces nothing) is cut off at the
limit, so no request can fill the server's memory or disk."""

from __future__ import annotations

import json

from plait.serving.fields import RequestError


class BodyTooLarge(RequestError):
    def __init__(self, max_bytes: int):
        super().__init__(413, f"the request body is over the server's limit of {max_bytes / 2**20:g} MiB (--max-upload-mb)")


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of request body."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        announced = dict(scope["headers"]).get(b"content-length", b"")
        if announced.isdigit() and int(announced) > self.max_bytes:
            return await self.refuse(send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)  # answered 413 by the app's RequestError handler
            return message

        await self.app(scope, limited, send)

    async def refuse(self, send) -> None:
        body = json.dumps(BodyTooLarge(self.max_bytes).to_json()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
