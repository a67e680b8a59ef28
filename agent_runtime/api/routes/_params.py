"""Query parameters and error responses shared by the API's routers (path parameters,
shared with the console: core/params.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Query

from agent_runtime.schemas.common import ErrorRead

__all__ = ["INVALID", "IfMatch", "Limit", "errors"]

Limit = Annotated[int, Query(ge=1, le=500, description="page size (1-500)")]
IfMatch = Annotated[
    str | None,
    Header(description='the session ETag (`"<version>"`) the write expects; 412 if stale'),
]


def errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, all with the common error body."""
    return {code: {"model": ErrorRead, "description": text} for code, text in descriptions.items()}


INVALID = errors({422: "invalid input"})
