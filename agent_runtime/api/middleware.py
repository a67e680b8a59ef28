"""Pure ASGI middleware: API-key authentication and a request body size limit."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

__all__ = ["ApiKeyMiddleware", "BodySizeLimitMiddleware", "BodyTooLargeError"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """Every HTTP request except `public_paths` needs `Authorization: Bearer <key>`.

    A middleware rather than a router dependency, so that no route (docs and
    routes added later included) can be reached without the key.
    """

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        public_paths: frozenset[str],
        own_auth_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()
        self.public_paths = public_paths
        # Paths that authenticate people their own way (the console's login), not by key.
        self.own_auth_prefix = own_auth_prefix

    def _exempt(self, path: str) -> bool:
        prefix = self.own_auth_prefix
        return path in self.public_paths or bool(
            prefix and (path == prefix or path.startswith(prefix + "/"))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            await _send_error(
                send,
                401,
                "unauthorized",
                "missing or wrong API key",
                [(b"www-authenticate", b'Bearer realm="agent-runtime"')],
            )
            return
        await self.app(scope, receive, send)


class BodyTooLargeError(HTTPException):
    """Raised from `receive` when a streamed body passes the limit.

    An HTTPException, because FastAPI turns any other error while reading the
    body into a 400.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _send_error(
                send,
                413,
                "payload_too_large",
                f"request body is larger than {self.max_bytes} bytes",
            )
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
