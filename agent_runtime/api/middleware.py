"""Pure ASGI middleware: the request's id and duration, API-key authentication and a
request body size limit."""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from time import perf_counter
from typing import Any

from starlette.exceptions import HTTPException

from agent_runtime.observability.logs import REQUEST_ID
from agent_runtime.observability.metrics import observe_request

__all__ = [
    "REQUEST_ID_HEADER",
    "ApiKeyMiddleware",
    "BodySizeLimitMiddleware",
    "BodyTooLargeError",
    "RequestContextMiddleware",
    "new_request_id",
]

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


REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept if it is 1 to 128 visible ASCII characters (no space, no
# control character: it is written into every log line); else a new one is made.
_SANE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
# uuid4's version (4) and variant (10xx) bits, as uuid.UUID(version=4) sets them.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> bytes:
    """A random uuid4 as 32 hex digits: `uuid.uuid4().hex`, without building the
    UUID object (a fifth of the cost, on every request)."""
    return b"%032x" % (int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET)


class RequestContextMiddleware:
    """The outermost layer (around the app's error handling too): gives each request
    an id and records its duration.

    The id is the caller's `X-Request-ID` when sane, else a new uuid4 (32 hex
    digits); it is sent back as `X-Request-ID` (500 answers included) and is the
    `request_id` of every log line written meanwhile. The duration goes to the
    request histogram under the route *template* that routing left in the scope
    (`scope["route"].path`, e.g. `/sessions/{session_id}`), never the raw path.
    One `send` wrapper per request does both.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if _SANE_REQUEST_ID.fullmatch(value):
                    request_id = value
                break
        if request_id is None:
            request_id = new_request_id()
        status = 500  # what the server answers if the app ends without answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        token = REQUEST_ID.set(request_id.decode())
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # The id stays set: the server's "Exception in ASGI application" line,
            # written next in this request's task, is this request's.
            observe_request(scope.get("route"), scope["method"], status, perf_counter() - start)
            raise
        observe_request(scope.get("route"), scope["method"], status, perf_counter() - start)
        REQUEST_ID.reset(token)


class ApiKeyMiddleware:
    """Every HTTP request except `public_paths` needs `Authorization: Bearer <key>`.

    A middleware rather than a router dependency, so that no route (docs and
    routes added later included) can be reached without the key. `path_keys`
    names paths that also accept a key of their own (`/metrics`: the metrics key);
    with `api_key` None only those paths need a key, theirs.
    """

    def __init__(
        self,
        app: ASGIApp,
        api_key: str | None,
        public_paths: frozenset[str],
        own_auth_prefix: str | None = None,
        path_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.expected = None if api_key is None else f"Bearer {api_key}".encode()
        self.public_paths = public_paths
        # Paths that authenticate people their own way (the console's login), not by key.
        self.own_auth_prefix = own_auth_prefix
        self.path_keys = {path: f"Bearer {key}".encode() for path, key in (path_keys or {}).items()}

    def _exempt(self, path: str) -> bool:
        prefix = self.own_auth_prefix
        return path in self.public_paths or bool(
            prefix and (path == prefix or path.startswith(prefix + "/"))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        own = self.path_keys.get(scope["path"])
        if self.expected is None and own is None:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        # Each key set is compared, with no early exit: the time taken tells nothing.
        matches_api = self.expected is not None and hmac.compare_digest(given, self.expected)
        matches_own = own is not None and hmac.compare_digest(given, own)
        if not (matches_api or matches_own):
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
