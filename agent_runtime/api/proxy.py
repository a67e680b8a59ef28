"""Forwarded headers: `X-Forwarded-For` and `X-Forwarded-Proto` are believed only
from the proxies of `AGENT_RUNTIME__FORWARDED_ALLOW_IPS` (uvicorn's syntax:
addresses and networks, comma-separated, or `*`); by default from no one.

The app reads them itself (uvicorn's `ProxyHeadersMiddleware`, inside the app), so
that it behaves the same however it is served: `agent-runtime serve` turns uvicorn's
own reading off, and under plain `uvicorn agent_runtime.main:app` or gunicorn's
uvicorn worker, whose proxy headers are on by default and trust 127.0.0.1, the app
disarms uvicorn's at start-up. The client address (the console's login throttle,
the access log) and the scheme (the console cookie's `Secure`) follow.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Any, cast

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.lifespan.on import LifespanOn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from agent_runtime.config import Settings

__all__ = ["ForwardedHeadersMiddleware", "install_proxy_headers"]

logger = logging.getLogger("agent_runtime")

# How far out uvicorn's lifespan runner (frames) and its wrappers (objects) are looked for.
_FRAMES_DEPTH = 32
_LIFESPAN_MAIN = LifespanOn.main.__code__  # uvicorn's: `await app(scope, receive, send)`
# uvicorn's default trusted proxies (older, newer versions): not an operator's choice.
_UVICORN_DEFAULTS = frozenset({"127.0.0.1", "127.0.0.1,::1"})


class ForwardedHeadersMiddleware:
    """Client address and scheme from the forwarded headers of `trusted` proxies
    (empty: none); at start-up, the serving uvicorn's own proxy headers disarmed."""

    def __init__(self, app: ASGIApp, trusted: str) -> None:
        self.app = app
        self.trusted = trusted.strip()
        self.handle = app
        if self.trusted:
            # uvicorn's types for the same ASGI callables are its own.
            proxy = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=self.trusted)
            self.handle = cast(ASGIApp, proxy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.handle(scope, receive, send)
            return
        config = serving_uvicorn_config(sys._getframe(1))
        disarmed = disarm_proxy_headers(config)

        async def send_then_say(message: Message) -> None:
            await send(message)
            # Said once the app's start-up has set up its logging.
            if disarmed and message["type"] == "lifespan.startup.complete":
                server_trusts = _as_text(getattr(config, "forwarded_allow_ips", ""))
                logger.log(
                    logging.INFO if server_trusts in _UVICORN_DEFAULTS else logging.WARNING,
                    "uvicorn's proxy headers (--forwarded-allow-ips, FORWARDED_ALLOW_IPS: %s) "
                    "are ignored: forwarded headers are trusted from "
                    "AGENT_RUNTIME__FORWARDED_ALLOW_IPS only (%s)",
                    server_trusts,
                    self.trusted or "no one",
                )

        await self.app(scope, receive, send_then_say)


def serving_uvicorn_config(frame: FrameType | None) -> object | None:
    """The configuration of the uvicorn server running the lifespan that is starting
    (`frame`: a frame of that start), if it is uvicorn's (the uvicorn command, its
    `run()`, gunicorn's uvicorn worker). A server hands the app nothing that leads
    to it: it is found in the frame of uvicorn's lifespan runner, a caller."""
    for _ in range(_FRAMES_DEPTH):
        if frame is None:
            return None
        if frame.f_code is _LIFESPAN_MAIN:
            return getattr(frame.f_locals.get("self"), "config", None)
        frame = frame.f_back
    return None


def disarm_proxy_headers(config: object | None) -> int:
    """Make uvicorn's own `ProxyHeadersMiddleware` around the app (`--proxy-headers`,
    on by default, trusting 127.0.0.1) trust no one, so that only this app's setting
    counts; how many were found (from `config.loaded_app`, the outermost wrapper)."""
    wrapper = getattr(config, "loaded_app", None)
    found = 0
    for _ in range(_FRAMES_DEPTH):
        if wrapper is None or isinstance(wrapper, Starlette):  # the app: what is inside is ours
            break
        if isinstance(wrapper, ProxyHeadersMiddleware):
            wrapper.trusted_hosts = ProxyHeadersMiddleware(wrapper.app, []).trusted_hosts
            found += 1
        wrapper = getattr(wrapper, "app", None)
    return found


def _as_text(hosts: object) -> str:
    return ",".join(hosts) if isinstance(hosts, list) else str(hosts).replace(" ", "")


def install_proxy_headers(app: FastAPI, settings: Settings) -> None:
    """Add the `ForwardedHeadersMiddleware` of `settings.forwarded_allow_ips`."""
    app.add_middleware(ForwardedHeadersMiddleware, trusted=settings.forwarded_allow_ips)
