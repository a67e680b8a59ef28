"""Path and query parameters shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Path, Query

from agent_runtime.schemas.common import ErrorRead
from models.limits import ID_MAX

SessionId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="the caller's id")]
CallId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="the tool call id")]
Limit = Annotated[int, Query(ge=1, le=500, description="page size (1-500)")]
IfMatch = Annotated[
    str | None,
    Header(description='the session ETag (`"<version>"`) the write expects; 412 if stale'),
]


def errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, all with the common error body."""
    return {code: {"model": ErrorRead, "description": text} for code, text in descriptions.items()}


INVALID = errors({422: "invalid input"})
