"""The input rules both sides apply: the services before they write, the client before
it sends (so a remote caller gets the in-process error, without a round trip)."""

from __future__ import annotations

from typing import Any, cast

from pydantic import TypeAdapter, ValidationError

from agent_runtime.errors import InvalidInputError
from agent_runtime.schemas.types import Decision, Id, LookupId
from models.enums import ApprovalStatus
from models.limits import BIGINT_MAX

__all__ = [
    "lookup_id",
    "require_decision",
    "require_id",
    "require_non_negative_number",
    "require_positive_int",
    "validate",
]

_adapters: dict[Any, TypeAdapter[Any]] = {}


def validate(schema: Any, value: Any, *where: str | int) -> Any:
    """`value` validated by the pydantic type or model `schema` (see schemas/types.py);
    `InvalidInputError` naming `where` (e.g. "messages", 3) if it is refused."""
    adapter = _adapters.get(schema)
    if adapter is None:
        adapter = _adapters[schema] = TypeAdapter(schema)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInputError.from_validation(exc, *where) from None


def lookup_id(value: Any, what: str = "session_id") -> str:
    """An id to look up: any string that could have been stored."""
    return cast(str, validate(LookupId, value, what))


def require_id(value: Any, what: str = "session_id") -> str:
    """An id to store: non-empty, at most ID_MAX characters, storable."""
    return cast(str, validate(Id, value, what))


def require_positive_int(
    value: Any, what: str, *, allow_zero: bool = False, maximum: int = BIGINT_MAX
) -> int:
    """An integer from 1 (0 with `allow_zero`) to `maximum`: by default what a BIGINT
    column holds, so no query overflows its column."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= maximum:
        shown = f"{value!r:.40}"
        raise InvalidInputError(f"{what} must be an integer from {low} to {maximum}, got {shown}")
    return value


def require_non_negative_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInputError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def require_decision(status: Any) -> ApprovalStatus:
    """A decision status (approved, rejected, cancelled), or `InvalidInputError`."""
    return cast(ApprovalStatus, validate(Decision, status, "status"))
