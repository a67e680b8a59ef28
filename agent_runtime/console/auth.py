"""Who is logged in: the signed session cookie, the CSRF check of every form."""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from itsdangerous import BadSignature, TimestampSigner
from starlette.responses import Response
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.core.dependencies import DBSession
from agent_runtime.services import console_sessions as console_session_service
from agent_runtime.services.console_sessions import ConsoleLogin

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "CheckedLogin",
    "ConsoleUser",
    "CsrfRefusedError",
    "LoginRequiredError",
    "check_login_csrf",
    "clear_session_cookie",
    "login_csrf_token",
    "login_from_cookie",
    "session_lifetime",
    "session_login",
    "session_token",
    "set_login_csrf_cookie",
    "set_session_cookie",
]

COOKIE = "console_session"
LOGIN_COOKIE = "console_login_csrf"  # the login form's CSRF token, before any session
_SALT = "agent-runtime.console.session"
_KEYS_TTL = 5.0  # seconds a worker trusts its copy of the signing keys: a rotation's delay


class LoginRequiredError(Exception):
    """No live console session: pages redirect to the login page, the rest answer 401."""


class CsrfRefusedError(Exception):
    """A console form came without its CSRF token, or with another session's: 403."""


class _Keys:
    """This worker's copy of the signing keys (they live in the database)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.read_at = 0.0

    async def signer(self, db: BaseDBAsyncClient, *, fresh: bool = False) -> TimestampSigner:
        if fresh or not self.keys or time.monotonic() - self.read_at > _KEYS_TTL:
            self.keys = await console_session_service.signing_keys(db)
            self.read_at = time.monotonic()
        return TimestampSigner(self.keys, salt=_SALT)  # the last key signs, all verify


_keys = _Keys()


async def _unsign(db: BaseDBAsyncClient, value: str, max_age: int) -> str | None:
    for fresh in (False, True):  # a key rotated by another instance: read the keys again
        signer = await _keys.signer(db, fresh=fresh)
        try:
            return signer.unsign(value, max_age=max_age).decode()
        except BadSignature:
            continue
    return None


def _max_age(request: Request) -> int:
    return int(float(request.app.state.settings.console_session_hours) * 3600)


def session_lifetime(request: Request) -> timedelta:
    return timedelta(seconds=_max_age(request))


async def session_token(request: Request, db: BaseDBAsyncClient) -> str | None:
    """The session token in the request's cookie, if its signature and age are good."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    return await _unsign(db, value, _max_age(request))


async def session_login(request: Request, db: BaseDBAsyncClient) -> tuple[str, ConsoleLogin]:
    """The session token of the request's cookie and its live login (the token, to
    look the login up again later: a stream checks it is still live);
    `LoginRequiredError` if none."""
    token = await session_token(request, db)
    login = await console_session_service.console_login(db, token) if token else None
    if token is None or login is None:
        raise LoginRequiredError
    request.state.console_login = login
    return token, login


async def login_from_cookie(request: Request, db: BaseDBAsyncClient) -> ConsoleLogin:
    """The reviewer whose live session the cookie names; `LoginRequiredError` if none."""
    _, login = await session_login(request, db)
    return login


async def _current_login(request: Request, db: DBSession) -> ConsoleLogin:
    return await login_from_cookie(request, db)


async def _checked_login(request: Request, login: ConsoleUser) -> ConsoleLogin:
    form = await request.form()
    given = form.get("csrf_token")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode(), login.csrf_token.encode()
    ):
        raise CsrfRefusedError
    return login


ConsoleUser = Annotated[ConsoleLogin, Depends(_current_login)]
# A logged-in reviewer's form, with its CSRF token checked: every console POST.
CheckedLogin = Annotated[ConsoleLogin, Depends(_checked_login)]


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def set_session_cookie(
    response: Response, request: Request, db: BaseDBAsyncClient, token: str
) -> None:
    # Fresh keys to sign (a login is rare): never a key another worker has dropped.
    signed = (await _keys.signer(db, fresh=True)).sign(token).decode()
    response.set_cookie(
        COOKIE,
        signed,
        max_age=_max_age(request),
        path="/console",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")


def login_csrf_token(request: Request) -> str:
    """The login form's CSRF token: the same random value in the form and in a
    SameSite=Strict cookie (a double submit: there is no session yet)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path="/console",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def check_login_csrf(request: Request, given: object) -> None:
    expected = request.cookies.get(LOGIN_COOKIE)
    if (
        not expected
        or not isinstance(given, str)
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise CsrfRefusedError
