"""Query parameters and error responses shared by the API's routers (path parameters,
shared with the console: core/params.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Query

from agent_runtime.core.auth import Permission, requires
from agent_runtime.schemas.common import ErrorRead

__all__ = ["INVALID", "MAINTAINS", "READS", "WRITES", "IfMatch", "Limit", "errors"]

# What each route needs of the caller's key (core/auth.py GRANTS says which role has it).
READS = requires(Permission.READ)
WRITES = requires(Permission.WRITE)
MAINTAINS = requires(Permission.MAINTAIN)

Limit = Annotated[int, Query(ge=1, le=500, description="page size (1-500)")]
IfMatch = Annotated[
    str | None,
    Header(description='the session ETag (`"<version>"`) the write expects; 412 if stale'),
]


def errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, all with the common error body."""
    return {code: {"model": ErrorRead, "description": text} for code, text in descriptions.items()}


INVALID = errors(
    {
        401: "missing or wrong API key",
        403: "the key's role may not do this",
        422: "invalid input",
    }
)
