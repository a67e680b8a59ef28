"""Pure ASGI middleware: the request's id and duration, API-key authentication and a
request body size limit."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from starlette.exceptions import HTTPException
from tortoise import Tortoise

from agent_runtime.core.auth import ANONYMOUS, Keys, Permission, allowed, refusal
from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.observability.logs import REQUEST_ID
from agent_runtime.observability.metrics import observe_request
from agent_runtime.services.api_keys import Credential
from models import Role

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
    """Every HTTP request except `public_paths` needs `Authorization: Bearer <key>`
    once any key exists (the settings' or the database's); the key's credential
    goes into the request's state for the routes' permission checks.

    A middleware rather than a router dependency, so that no route (docs and
    routes added later included) can be reached without a key. What a key may do
    is checked here only for what no route declares: `/metrics` (a plain route)
    needs the metrics permission, and a metrics key opens nothing else.
    """

    def __init__(
        self,
        app: ASGIApp,
        keys: Keys,
        dialect: str,
        public_paths: frozenset[str],
        own_auth_prefix: str | None = None,
        metrics_path: str | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.dialect = dialect
        self.public_paths = public_paths
        # Paths that authenticate people their own way (the console's login), not by key.
        self.own_auth_prefix = own_auth_prefix
        self.metrics_path = metrics_path

    def _exempt(self, path: str) -> bool:
        prefix = self.own_auth_prefix
        return path in self.public_paths or bool(
            prefix and (path == prefix or path.startswith(prefix + "/"))
        )

    async def _caller(self, path: str, header: bytes | None) -> Credential | None:
        db = Tortoise.get_connection(self.dialect)
        token = header[7:] if header and header[:7].lower() == b"bearer " else None
        caller = await self.keys.credential(db, token) if token else None
        if caller is not None:
            return caller
        metrics_needs_key = path == self.metrics_path and self.keys.metrics_key_set
        if metrics_needs_key or await self.keys.required(db):
            return None
        return ANONYMOUS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        try:
            caller = await self._caller(path, header)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            # Fail closed: no key can be checked, nothing is served.
            await _send_error(
                send,
                503,
                "unavailable",
                "database unavailable; retry later",
                [(b"retry-after", b"1")],
            )
            return
        if caller is None:
            await _send_error(
                send,
                401,
                "unauthorized",
                "missing or wrong API key",
                [(b"www-authenticate", b'Bearer realm="agent-runtime"')],
            )
            return
        needed = Permission.METRICS if path == self.metrics_path else None
        if needed is None and caller.role == Role.METRICS:
            needed = Permission.READ  # a metrics key opens nothing but /metrics
        if needed is not None and not allowed(caller, needed):
            await _send_error(send, 403, "forbidden", str(refusal(caller, needed)))
            return
        scope.setdefault("state", {})["caller"] = caller
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
