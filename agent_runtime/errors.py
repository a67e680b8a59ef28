"""Domain errors raised by the service API; the HTTP layer maps them in one place."""

from __future__ import annotations

__all__ = [
    "AgentRuntimeError",
    "ConfigurationError",
    "ConflictError",
    "InvalidInputError",
    "LegacyImportError",
    "MigrationFileError",
    "NotFoundError",
    "PreconditionFailedError",
    "SchemaOutOfDateError",
    "UnavailableError",
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
    """A caller passed a value the service refuses; nothing was changed."""

    status_code = 422
    code = "invalid_input"


class NotFoundError(AgentRuntimeError, LookupError):
    status_code = 404
    code = "not_found"


class ConflictError(AgentRuntimeError):
    status_code = 409
    code = "conflict"


class PreconditionFailedError(AgentRuntimeError):
    """An `If-Match` version did not match the stored one; nothing was changed."""

    status_code = 412
    code = "precondition_failed"


class UnavailableError(AgentRuntimeError):
    """The database cannot be reached (or is not ready); retry later."""

    status_code = 503
    code = "unavailable"


class LegacyImportError(AgentRuntimeError):
    """The legacy database cannot be read: bad URL, unreachable, or not a legacy schema."""

    code = "legacy_import_error"
