"""One JSON error body for every failure, mapped from exceptions in one place.

Body: `{"error": {"code": "...", "message": "...", "details": [...]?}}`. No stack
trace or SQL ever reaches a client; unexpected errors are logged server-side.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.errors import AgentRuntimeError, InvalidInputError, validation_details

__all__ = ["DatabaseUnavailableMiddleware", "error_response", "install_error_handlers"]

logger = logging.getLogger(__name__)

_JSON: TypeAdapter[Any] = TypeAdapter(Any)  # datetimes as the responses write them
_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, current: Any = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    if current is not None:
        error["current"] = _JSON.dump_python(current, mode="json")
    return JSONResponse(status_code=status, content={"error": error})


def _domain_error_response(exc: AgentRuntimeError) -> JSONResponse:
    return error_response(
        exc.status_code,
        exc.code,
        str(exc),
        getattr(exc, "details", None),
        getattr(exc, "current", None),
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentRuntimeError)
    if exc.status_code >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
    return _domain_error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(exc.errors())
    return error_response(422, "invalid_input", "request validation failed", details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (e.g. not UTF-8): invalid input.
        return _domain_error_response(InvalidInputError("request body could not be decoded"))
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


_UNAVAILABLE_MESSAGE = "database unavailable; nothing was saved, retry later"
_RETRY_AFTER_SECONDS = "1"


def _unavailable_response() -> JSONResponse:
    response = error_response(503, "unavailable", _UNAVAILABLE_MESSAGE)
    response.headers["Retry-After"] = _RETRY_AFTER_SECONDS
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    if is_database_unavailable(exc):
        logger.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
        return _unavailable_response()
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error; nothing was saved")


class DatabaseUnavailableMiddleware:
    """Answers 503 (with `Retry-After`) when a request fails because the database is
    unavailable, logging one warning line.

    The catch-all `Exception` handler maps these too, but Starlette runs that handler
    in its outermost middleware and then re-raises, so uvicorn would also log
    "Exception in ASGI application" with a full traceback for every request refused
    during an outage (thousands of ERROR tracebacks for a ten-second database restart).
    This middleware sits inside that one and answers without re-raising. Any other
    exception, or one raised after the response has started, passes through unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or not is_database_unavailable(exc):
                raise
            logger.warning("database unavailable on %s %s: %r", scope["method"], scope["path"], exc)
            await _unavailable_response()(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AgentRuntimeError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    # Added before any other middleware, so it is the innermost: closest to the routes.
    app.add_middleware(DatabaseUnavailableMiddleware)
