"""Who is calling the REST API, and what their key's role lets them do.

`Keys` turns a bearer token into a `Credential` (the bootstrap keys from the
settings, or a key from the database); `ApiKeyMiddleware` (api/middleware.py) puts
it in the request's state; each route declares the `Permission` it needs with one
of the dependencies below. The grants are this module's `GRANTS`, nowhere else.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request, params
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.config import Settings
from agent_runtime.errors import ForbiddenError
from agent_runtime.services import api_keys as api_key_service
from agent_runtime.services.api_keys import Credential
from models import Role

__all__ = [
    "ANONYMOUS",
    "BOOTSTRAP_KEY_NAME",
    "CACHE_SECONDS",
    "GRANTS",
    "METRICS_KEY_NAME",
    "Caller",
    "Decider",
    "Keys",
    "Permission",
    "allowed",
    "refusal",
    "require",
    "requires",
]

# Seconds a worker trusts what it read about a token: a revoked key stops working on
# every worker within this (plus a request's length).
CACHE_SECONDS = 2.0
_CACHE_ENTRIES = 10_000  # tokens remembered per worker (wrong ones too: no DB read each)
BOOTSTRAP_KEY_NAME = "AGENT_RUNTIME__API_KEY"
METRICS_KEY_NAME = "AGENT_RUNTIME__METRICS_KEY"
# With no key anywhere, authentication is off (loopback only): every caller is this.
ANONYMOUS = Credential("anonymous", Role.ADMIN)


class Permission(StrEnum):
    READ = "read"  # sessions, agent contexts, approvals, their audit trail, waits, events
    WRITE = "write"  # sessions, agent contexts; record, withdraw, claim, report approvals
    DECIDE = "decide"  # approve, reject, cancel
    MAINTAIN = "maintain"  # retention runs
    METRICS = "metrics"  # GET /metrics


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: frozenset({Permission.READ, Permission.WRITE}),
    Role.REVIEWER: frozenset({Permission.READ, Permission.DECIDE}),
    Role.ADMIN: frozenset(Permission),
    Role.METRICS: frozenset({Permission.METRICS}),
}

_REFUSALS = {
    Permission.READ: "read",
    Permission.WRITE: "write sessions, record approvals, claim them or report results",
    Permission.DECIDE: "decide tool calls (this needs a reviewer or admin key)",
    Permission.MAINTAIN: "run maintenance (this needs an admin key)",
    Permission.METRICS: "read metrics (this needs a metrics or admin key)",
}


def allowed(caller: Credential, permission: Permission) -> bool:
    return permission in GRANTS[caller.role]


def refusal(caller: Credential, permission: Permission) -> ForbiddenError:
    return ForbiddenError(f"the {caller.role} key {caller.name!r} may not {_REFUSALS[permission]}")


class Keys:
    """This worker's view of the keys: the two from the settings, and the database's
    read through a small cache (CACHE_SECONDS)."""

    def __init__(self, settings: Settings) -> None:
        self._bootstrap = _secret(settings.api_key)
        self._metrics = _secret(settings.metrics_key)
        self._cache: OrderedDict[bytes, tuple[float, Credential | None]] = OrderedDict()
        self._any_key: tuple[float, bool] = (-CACHE_SECONDS, False)

    async def credential(self, db: BaseDBAsyncClient, token: bytes) -> Credential | None:
        """The key whose token `token` is, None if no key has it."""
        # The settings' keys are compared with no early exit: the time taken tells nothing.
        is_bootstrap = self._bootstrap is not None and hmac.compare_digest(token, self._bootstrap)
        is_metrics = self._metrics is not None and hmac.compare_digest(token, self._metrics)
        if is_bootstrap:
            return Credential(BOOTSTRAP_KEY_NAME, Role.ADMIN)
        if is_metrics:
            return Credential(METRICS_KEY_NAME, Role.METRICS)
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            return None
        found = await api_key_service.credential_for_token(db, text)
        self._cache[token] = (now, found)
        self._cache.move_to_end(token)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return found

    async def required(self, db: BaseDBAsyncClient) -> bool:
        """Whether requests need a key: the settings name one, or the database has one."""
        if self._bootstrap is not None:
            return True
        now = time.monotonic()
        if now - self._any_key[0] >= CACHE_SECONDS:
            self._any_key = (now, await api_key_service.any_api_keys(db))
        return self._any_key[1]

    @property
    def metrics_key_set(self) -> bool:
        return self._metrics is not None


def _secret(value: object) -> bytes | None:
    get = getattr(value, "get_secret_value", None)
    return None if get is None else str(get()).encode()


def _caller(request: Request) -> Credential:
    caller: Credential = getattr(request.state, "caller", ANONYMOUS)
    return caller


def require(permission: Permission) -> params.Depends:
    """A route dependency: the caller, if their key's role grants `permission`; else 403."""

    async def dependency(request: Request) -> Credential:
        caller = _caller(request)
        if not allowed(caller, permission):
            raise refusal(caller, permission)
        return caller

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the tests
    return Depends(dependency)


def requires(permission: Permission) -> list[params.Depends]:
    """`dependencies=requires(...)` for a route that needs the check, not the caller."""
    return [require(permission)]


Caller = Annotated[Credential, Depends(_caller)]
Decider = Annotated[Credential, require(Permission.DECIDE)]
