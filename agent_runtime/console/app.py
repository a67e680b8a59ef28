"""Plugs the console into the app: its routes, its static files, its security headers
and how it answers a missing login or CSRF token."""

from __future__ import annotations

import inspect
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_runtime.console.auth import CsrfRefusedError, LoginRequiredError
from agent_runtime.console.routes import approvals, batch, inbox, login, sessions
from agent_runtime.console.templating import render
from agent_runtime.errors import AgentRuntimeError

__all__ = ["PREFIX", "install_console"]

PREFIX = "/console"
STATIC = Path(__file__).parent / "static"

# No inline script or style anywhere: injected markup could not run even if it got in.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class ConsoleHeadersMiddleware:
    """Security headers on every console answer; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith(f"{PREFIX}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *_HEADERS]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)
    return render(request, "error.html", {"title": "Log in first", "text": ""}, status=401)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    text = "The form had no valid CSRF token, so nothing was changed. Reload the page and retry."
    return render(request, "error.html", {"title": "CSRF check failed", "text": text}, status=403)


def _html_on_console(app: FastAPI, exc_class: type[Exception]) -> None:
    """Errors on console pages as a page; elsewhere as the API's JSON body."""
    json_handler = app.exception_handlers[exc_class]

    async def handler(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX + "/"):
            answer = json_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        if isinstance(exc, AgentRuntimeError):
            status, text = exc.status_code, str(exc)
        elif isinstance(exc, StarletteHTTPException):  # no such page, or not this method
            status, text = exc.status_code, "There is no such page in the console."
        else:  # a malformed path or query
            status, text = 422, "The address is not one the console makes."
        if status >= 500:
            text = "Something went wrong; nothing was changed. Try again in a moment."
        title = {404: "Not found", 405: "Not found", 503: "Unavailable"}.get(
            status, "Cannot do that"
        )
        return render(request, "error.html", {"title": title, "text": text}, status=status)

    app.add_exception_handler(exc_class, handler)


def install_console(app: FastAPI) -> None:
    """Call after the API's error handlers are installed: console pages answer
    errors with pages of their own."""
    for module in (login, inbox, approvals, batch, sessions):
        app.include_router(module.router, prefix=PREFIX, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(LoginRequiredError, _login_required)
    app.add_exception_handler(CsrfRefusedError, _csrf_refused)
    app.add_middleware(ConsoleHeadersMiddleware)
    for exc_class in (AgentRuntimeError, RequestValidationError, StarletteHTTPException):
        _html_on_console(app, exc_class)
