"""Sessions and their messages (including the design note's two endpoints).

The two hottest routes, saving the whole list (`POST /sessions/{id}`) and loading
a session (`GET /sessions/{id}`), are APIRoutes like the others (declared
parameters, permission, OpenAPI, validation, error bodies), with a plain handler
for their common case (`plain`): no query string, an id within bounds. It runs
what FastAPI would, the route's declared permission dependency, the request's
transaction (`request_db`), the same route code, without solving the dependencies
and validating the parameters anew on every request (about 30% of a save's time in
the server, in a profile). Any other request is FastAPI's, with its own validation
and errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.routing import APIRoute
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.api.conditional import etag, resolve_if_match
from agent_runtime.api.message_body import MESSAGES_BODY, read_messages, refuse_messages
from agent_runtime.api.routes._params import INVALID, READS, WRITES, IfMatch, Limit, errors
from agent_runtime.core.auth import Permission
from agent_runtime.core.dependencies import DBConnection, DBSession, get_connection, request_db
from agent_runtime.core.params import SessionId
from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.schemas.common import StatusRead
from agent_runtime.schemas.cursors import decode_cursor, encode_cursor
from agent_runtime.schemas.sessions import (
    MessageCreate,
    MessagePageRead,
    SessionPageRead,
    SessionRead,
    SessionStatsRead,
    SessionSummaryRead,
    SessionUpdate,
)
from agent_runtime.schemas.types import UTCDateTime
from agent_runtime.services import messages as message_service
from agent_runtime.services import save as save_service
from agent_runtime.services import sessions as session_service
from agent_runtime.timeutils import parse_datetime
from models.limits import ID_MAX

# A plain handler: (request, session id, the route's permission check) -> response.
PlainHandler = Callable[[Request, str, Callable[[Request], Awaitable[Any]]], Awaitable[Response]]
_PLAIN: dict[Callable[..., Any], PlainHandler] = {}
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def plain(handler: PlainHandler) -> Callable[[_Endpoint], _Endpoint]:
    """Give the endpoint below a plain handler for its common case (see the module's
    docstring); put it under the route's decorator."""

    def register(endpoint: _Endpoint) -> _Endpoint:
        _PLAIN[endpoint] = handler
        return endpoint

    return register


class PlainRoute(APIRoute):
    """An APIRoute whose endpoint may have a plain handler (`plain`).

    Its one declared dependency must be the permission check (`dependencies=READS`
    or `WRITES`): the plain handler awaits that very dependency, so what is checked
    is what is declared. `plain_permission` says which permission (the tests read it).
    """

    plain_permission: Permission | None = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        fast = _PLAIN.get(self.endpoint)
        if fast is None:
            return handler
        checks = [d.dependency for d in self.dependencies]
        permission = getattr(checks[0], "permission", None) if len(checks) == 1 else None
        if permission is None or checks[0] is None:
            raise TypeError(f"{self.path}: a plain handler needs exactly one permission check")
        self.plain_permission = permission
        check = checks[0]

        async def plain_or_fastapi(request: Request) -> Response:
            scope = request.scope
            session_id = scope["path_params"]["session_id"]
            if len(session_id) > ID_MAX or scope["query_string"]:
                return await handler(request)  # FastAPI's parameters and their errors
            return await fast(request, session_id, check)

        return plain_or_fastapi


router = APIRouter(
    prefix="/sessions",
    tags=["sessions"],
    responses=INVALID,
    route_class=PlainRoute,
)
_404 = errors({404: "unknown or deleted session"})
LastActivity = Annotated[
    UTCDateTime | None,
    Query(description="the session's last activity to record (naive = UTC); default: now"),
]
_412 = errors({412: "If-Match does not match"})


def _not_found(session_id: str) -> NotFoundError:
    return NotFoundError(f"session {session_id!r} not found")


def _session_key(cursor: str) -> tuple[datetime, str]:
    value = decode_cursor("sessions", cursor)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)):
        raise InvalidInputError("invalid sessions cursor")
    return parse_datetime(value[0], "cursor"), value[1]


def _position(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    value = decode_cursor("messages", cursor)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError("invalid messages cursor")
    return value


_SAVED = b'{"status":"saved"}'


async def _write_messages(
    request: Request,
    session_id: str,
    db: BaseDBAsyncClient,
    if_match: str | None,
    last_activity: datetime | None,
    *,
    append: bool,
) -> Response:
    """Save or append, conditional on `If-Match`; the new version goes out as ETag."""
    messages = await read_messages(request)
    expected = None
    if if_match is not None:
        expected = resolve_if_match(
            if_match, await session_service.get_session_version(db, session_id)
        )
    try:
        version = await save_service.write_messages(
            db,
            session_id,
            messages,
            last_activity or datetime.now(UTC),
            append=append,
            if_version=expected,
            schema=MessageCreate,
        )
    except InvalidInputError as exc:
        if exc.details[0]["loc"][:1] == ["messages"]:
            refuse_messages(messages)  # the 422 FastAPI gives for the whole body
        raise
    return Response(_SAVED, media_type="application/json", headers={"ETag": etag(version)})


@router.get("", dependencies=READS, response_model=SessionPageRead)
async def list_sessions(
    db: DBSession,
    limit: Limit = 50,
    cursor: str | None = None,
    include_deleted: bool = False,
) -> dict[str, Any]:
    """Sessions, most recently active first, a page at a time."""
    page = await session_service.list_sessions(
        db,
        limit=limit,
        after=_session_key(cursor) if cursor else None,
        include_deleted=include_deleted,
    )
    next_cursor = None
    if page.next_key is not None:
        next_cursor = encode_cursor("sessions", [page.next_key[0].isoformat(), page.next_key[1]])
    return {"items": page.items, "next_cursor": next_cursor}


async def _load(session_id: str, db: BaseDBAsyncClient) -> Response:
    # One statement reads the session, its version and its messages consistently, so
    # no transaction is needed (on SQLite, it also waits for a writer's to end).
    loaded = await session_service.load_session_json(db, session_id)
    if loaded is None:
        raise _not_found(session_id)
    body, version = loaded
    return Response(body, media_type="application/json", headers={"ETag": etag(version)})


async def _plain_get_session(
    request: Request, session_id: str, check: Callable[[Request], Awaitable[Any]]
) -> Response:
    await check(request)
    return await _load(session_id, await get_connection(request))


async def _plain_save_session(
    request: Request, session_id: str, check: Callable[[Request], Awaitable[Any]]
) -> Response:
    await check(request)
    if_match = request.headers.get("if-match")  # FastAPI's header parameter: the first
    async with request_db(request) as db:
        return await _write_messages(request, session_id, db, if_match, None, append=False)


@router.get(
    "/{session_id}",
    dependencies=READS,
    response_model=SessionRead,
    response_model_exclude_unset=True,
    responses=_404,
)
@plain(_plain_get_session)
async def get_session(session_id: SessionId, db: DBConnection) -> Response:
    """Load a session with its messages in saved order; the ETag is its version."""
    return await _load(session_id, db)


@router.post(
    "/{session_id}",
    dependencies=WRITES,
    response_model=StatusRead,
    responses=_412,
    openapi_extra=MESSAGES_BODY,
)
@plain(_plain_save_session)
async def save_session(
    session_id: SessionId,
    request: Request,
    db: DBSession,
    if_match: IfMatch = None,
    last_activity: LastActivity = None,
) -> Response:
    """Save the whole message list (creating the session if needed).

    With `If-Match`, the save happens only if the session is still at that version.
    """
    return await _write_messages(request, session_id, db, if_match, last_activity, append=False)


@router.patch(
    "/{session_id}",
    dependencies=WRITES,
    response_model=SessionSummaryRead,
    responses={**_404, **_412},
)
async def update_session(
    session_id: SessionId,
    changes: SessionUpdate,
    response: Response,
    db: DBSession,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    """Change the title and/or description."""
    current = await session_service.get_session_version(db, session_id)
    if current is None:
        raise _not_found(session_id)
    expected = resolve_if_match(if_match, current)
    await session_service.update_session(
        db, session_id, **changes.model_dump(exclude_unset=True), if_version=expected
    )
    summary = await session_service.get_session(db, session_id)
    assert summary is not None
    response.headers["ETag"] = etag(summary["version"])
    return summary


@router.delete(
    "/{session_id}",
    dependencies=WRITES,
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_404, **_412},
)
async def delete_session(
    session_id: SessionId,
    db: DBSession,
    hard: Annotated[bool, Query(description="remove for good instead of hiding")] = False,
    if_match: IfMatch = None,
) -> None:
    """Soft-delete (hide) a session, or with `hard=true` remove it and everything of it."""
    expected = None
    if if_match is not None:
        expected = resolve_if_match(
            if_match, await session_service.get_session_version(db, session_id)
        )
    if not await session_service.delete_session(db, session_id, not hard, if_version=expected):
        raise _not_found(session_id)


@router.get(
    "/{session_id}/messages",
    dependencies=READS,
    response_model=MessagePageRead,
    response_model_exclude_unset=True,
    responses=_404,
)
async def list_messages(
    session_id: SessionId,
    response: Response,
    db: DBSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(description="cursor: messages after it")] = None,
    before: Annotated[str | None, Query(description="cursor: messages before it")] = None,
    latest: Annotated[bool, Query(description="the last `limit` messages")] = False,
) -> dict[str, Any]:
    """Messages in saved order, a page at a time; `latest=true` gives the newest
    `limit` messages in one request. The ETag is the session's version read before
    the page: an `If-Match` with it fails if anything was written since."""
    version = await session_service.get_session_version(db, session_id)
    page = await message_service.list_messages(
        db,
        session_id,
        limit=limit,
        after=_position(after),
        before=_position(before),
        latest=latest,
    )
    if page is None or version is None:
        raise _not_found(session_id)
    response.headers["ETag"] = etag(version)
    items = page.items
    return {
        "items": items,
        "next_cursor": encode_cursor("messages", items[-1]["position"])
        if items and page.more_after
        else None,
        "prev_cursor": encode_cursor("messages", items[0]["position"])
        if items and page.more_before
        else None,
    }


@router.post(
    "/{session_id}/messages",
    dependencies=WRITES,
    response_model=StatusRead,
    responses=_412,
    openapi_extra=MESSAGES_BODY,
)
async def append_messages(
    session_id: SessionId,
    request: Request,
    db: DBSession,
    if_match: IfMatch = None,
    last_activity: LastActivity = None,
) -> Response:
    """Append messages after the stored ones (creating the session if needed): the
    cost does not grow with the conversation, unlike re-sending the whole list."""
    return await _write_messages(request, session_id, db, if_match, last_activity, append=True)


@router.get(
    "/{session_id}/stats", dependencies=READS, response_model=SessionStatsRead, responses=_404
)
async def get_session_stats(session_id: SessionId, db: DBSession) -> dict[str, Any]:
    stats = await session_service.get_session_stats(db, session_id)
    if stats is None:
        raise _not_found(session_id)
    return stats
