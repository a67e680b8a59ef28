"""Logging in and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from agent_runtime.console.auth import (
    CheckedLogin,
    check_login_csrf,
    clear_session_cookie,
    login_csrf_token,
    session_lifetime,
    session_token,
    set_login_csrf_cookie,
    set_session_cookie,
)
from agent_runtime.console.templating import render
from agent_runtime.core.dependencies import DBConnection, DBSession
from agent_runtime.errors import TooManyRequestsError, UnauthorizedError
from agent_runtime.services import console_sessions as console_session_service
from agent_runtime.services import reviewers as reviewer_service

router = APIRouter()


def _next(value: object) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if isinstance(value, str):
        parts = urlsplit(value)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/console/"):
            return value
    return "/console/"


def _login_page(
    request: Request, next_url: str, *, error: str | None = None, status: int = 200, name: str = ""
) -> Response:
    token = login_csrf_token(request)
    context = {"csrf_token": token, "next": next_url, "error": error, "username": name}
    response = render(request, "login.html", context, status=status)
    set_login_csrf_cookie(response, request, token)
    return response


@router.get("/login")
async def login_page(request: Request, next: str = "/console/") -> Response:
    return _login_page(request, _next(next))


# A plain connection, not the request's transaction: the password check takes ~50 ms
# of CPU by design, and must not hold a transaction (on SQLite, the write lock) meanwhile;
# and the throttle commits each attempt's reservation before the check, so that
# concurrent attempts count it (services/reviewers.py `authenticate`).
@router.post("/login")
async def log_in(request: Request, db: DBConnection) -> Response:
    form = await request.form()
    check_login_csrf(request, form.get("csrf_token"))
    name, password = form.get("username"), form.get("password")
    next_url = _next(form.get("next"))
    address = request.client.host if request.client else "unknown"
    try:
        reviewer = await reviewer_service.authenticate(db, name, password, address=address)  # type: ignore[arg-type]
    except UnauthorizedError:
        return _login_page(
            request, next_url, error="Wrong name or password.", status=401, name=str(name or "")
        )
    except TooManyRequestsError as exc:
        response = _login_page(
            request,
            next_url,
            error="Too many failed logins. Wait a few minutes and try again.",
            status=429,
            name=str(name or ""),
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    token = await console_session_service.start_console_session(
        db, reviewer, session_lifetime(request)
    )
    response = RedirectResponse(next_url, status_code=303)
    await set_session_cookie(response, request, db, token)
    return response


@router.post("/logout")
async def log_out(request: Request, login: CheckedLogin, db: DBSession) -> Response:
    token = await session_token(request, db)
    if token:
        await console_session_service.end_console_session(db, token)
    response = RedirectResponse("/console/login", status_code=303)
    clear_session_cookie(response)
    return response
