"""Domain errors raised by the service API; the HTTP layer maps them in one place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = [
    "AgentRuntimeError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "LegacyImportError",
    "MigrationFileError",
    "NotFoundError",
    "PreconditionFailedError",
    "SchemaOutOfDateError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnavailableError",
    "validation_details",
]


class AgentRuntimeError(Exception):
    """Base class of every error this package raises on purpose."""

    status_code = 500
    code = "internal_error"


class ConfigurationError(AgentRuntimeError):
    """The service is misconfigured (bad URL, bad setting); raised at start-up."""

    code = "configuration_error"


class MigrationFileError(ConfigurationError):
    """A migration file cannot be applied as is: e.g. it has no SQL for this database's
    dialect (written by plain `aerich migrate`); nothing was applied."""

    code = "migration_file_error"


class SchemaOutOfDateError(AgentRuntimeError):
    """The database schema is behind the migrations in `migrations/`."""

    status_code = 503
    code = "schema_out_of_date"


class InvalidInputError(AgentRuntimeError, ValueError):
    """A caller passed a value the service refuses; nothing was changed.

    `details` has the shape of a request validation error's (`loc`, `msg`, `type`
    per problem), so every 422 has the same body whichever layer refused it.
    """

    status_code = 422
    code = "invalid_input"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or [{"loc": [], "msg": message, "type": "value_error"}]

    @classmethod
    def from_validation(cls, exc: ValidationError, *where: str | int) -> InvalidInputError:
        """The pydantic errors of a value the caller passed as `where` (e.g. "messages", 3)."""
        errors = exc.errors()
        return cls(_describe(errors[0], where), validation_details(errors, prefix=where))


class BadRequestError(AgentRuntimeError):
    """A request header that does not parse (e.g. `If-Match` with a non-ASCII byte):
    400; nothing was written."""

    status_code = 400
    code = "bad_request"


class NotFoundError(AgentRuntimeError, LookupError):
    status_code = 404
    code = "not_found"


class ConflictError(AgentRuntimeError):
    """The change conflicts with the stored state; nothing was changed. `current` is
    the stored record when the caller needs it to go on (e.g. a claim refused because
    the tool already ran carries the approval with its result)."""

    status_code = 409
    code = "conflict"

    def __init__(self, message: str, *, current: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.current = current


class PreconditionFailedError(AgentRuntimeError):
    """An `If-Match` version did not match the stored one; nothing was changed."""

    status_code = 412
    code = "precondition_failed"


class UnauthorizedError(AgentRuntimeError):
    """Wrong credentials: the same message whether the name or the password was wrong."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(AgentRuntimeError):
    """The credentials are good, but their role may not do this: 403."""

    status_code = 403
    code = "forbidden"


class TooManyRequestsError(AgentRuntimeError):
    """Too many attempts (failed console logins); retry after `retry_after` seconds."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(AgentRuntimeError):
    """The database cannot be reached (or is not ready); retry later (after
    `retry_after` seconds when the service said so, as the client reports it)."""

    status_code = 503
    code = "unavailable"

    def __init__(self, *args: Any, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class LegacyImportError(AgentRuntimeError):
    """The legacy database cannot be read: bad URL, unreachable, or not a legacy schema."""

    code = "legacy_import_error"


def validation_details(
    errors: Iterable[Mapping[str, Any]], *, prefix: Sequence[str | int] = ()
) -> list[dict[str, Any]]:
    """Pydantic / FastAPI validation errors as the error body's `details`."""
    return [
        {
            "loc": [*prefix, *error.get("loc", ())],
            "msg": str(error.get("msg", "")).removeprefix("Value error, "),
            "type": error.get("type", ""),
        }
        for error in errors
    ]


def _describe(error: Mapping[str, Any], prefix: Sequence[str | int]) -> str:
    """One pydantic error as a sentence: `messages[5].role 'robot' is not one of ...`."""
    loc = [*prefix, *error.get("loc", ())]
    where = "".join(
        f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part))
        for i, part in enumerate(loc)
    )
    kind, ctx = error.get("type"), error.get("ctx") or {}
    if kind == "value_error":  # our own rules (schemas/types.py) read on: "x contains a NUL"
        msg = str(error["msg"]).removeprefix("Value error, ")
    elif kind == "string_too_long":
        msg = f"is longer than {ctx.get('max_length')} characters"
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        msg = "must not be empty"
    elif kind in ("enum", "literal_error"):
        msg = f"{error.get('input')!r:.60} is not one of {ctx.get('expected')}"
    else:
        msg = ": " + str(error["msg"])[:1].lower() + str(error["msg"])[1:]
        return f"{where}{msg}" if where else msg.removeprefix(": ")
    return f"{where} {msg}" if where else msg
