"""Settings, read from `AGENT_RUNTIME__*` environment variables and `.env`."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_DB_URL",
    "ENV_PREFIX",
    "Settings",
    "get_settings",
    "settings_error",
    "settings_or_exit",
    "unknown_variables",
]

DEFAULT_DB_URL = "sqlite:///data/agent_runtime.db"
ENV_PREFIX = "AGENT_RUNTIME__"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    db_url: str = Field(
        DEFAULT_DB_URL,
        description="Database URL: sqlite:///path.db or postgresql://user:pass@host:5432/db.",
    )
    auto_migrate: bool = Field(
        True,
        description="Apply pending migrations at start-up when the database is SQLite. "
        "PostgreSQL deployments run `agent-runtime migrate` as a deploy step instead.",
    )
    db_pool_min_size: int = Field(1, ge=0, description="PostgreSQL pool: minimum connections.")
    db_pool_max_size: int = Field(10, ge=1, description="PostgreSQL pool: maximum connections.")
    db_connect_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for a PostgreSQL connection."
    )
    api_key: SecretStr | None = Field(
        None,
        description="When set, every route except /health/* needs `Authorization: Bearer <key>`.",
    )
    metrics_key: SecretStr | None = Field(
        None,
        description="When set, GET /metrics also accepts `Authorization: Bearer <metrics key>` "
        "(and needs it when no API key is set): a key for the scraper that opens nothing else.",
    )
    allow_unauthenticated_remote: bool = Field(
        False,
        description="Allow serving on a non-loopback address without an API key.",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    message_cache_size: int = Field(
        100_000,
        ge=0,
        description="Messages of recently saved sessions kept per process, so that a save "
        "writes only what changed without reading the conversation back (0 disables).",
    )
    db_command_timeout: float = Field(
        30.0, gt=0, description="PostgreSQL: seconds a statement may take before it fails (503)."
    )
    retention_idle_hours: float | None = Field(
        24, ge=0, description="Retention: soft-delete sessions idle longer (empty: skip)."
    )
    retention_purge_days: float | None = Field(
        30, ge=0, description="Retention: hard-delete sessions soft-deleted longer ago."
    )
    retention_expire_approvals_hours: float | None = Field(
        None, ge=0, description="Retention: expire approvals pending longer (empty: never)."
    )
    retention_keep_checkpoints: int | None = Field(
        None,
        ge=1,
        description="Retention: LangGraph checkpoints kept per thread and namespace, the "
        "latest (empty: all).",
    )
    retention_interval_seconds: float = Field(
        0, ge=0, description="Run the retention policy inside the server this often (0: never)."
    )
    db_pooler: Literal["none", "pgbouncer"] = Field(
        "none",
        description="What sits between the service and PostgreSQL: none, or pgbouncer "
        "(transaction pooling: no named prepared statements, no session state; "
        "LISTEN and the migration lock go to db_direct_url).",
    )
    db_direct_url: str | None = Field(
        None,
        description="PostgreSQL reached directly, for what cannot go through a transaction "
        "pooler such as PgBouncer: LISTEN/NOTIFY for waits and the event stream "
        "(default: db_url).",
    )
    claim_lease_seconds: float = Field(
        300,
        gt=0,
        description="How long a claim on an approved tool call holds: after it, a caller "
        "whose claimer died may claim the call again.",
    )
    event_poll_seconds: float = Field(
        0.1,
        gt=0,
        le=5,
        description="How often each process reads the event log for news when no "
        "notification can tell it (SQLite; PostgreSQL without LISTEN).",
    )
    sse_heartbeat_seconds: float = Field(
        15, gt=0, description="Event stream: seconds between heartbeat comments."
    )
    sse_buffer_events: int = Field(
        1000,
        ge=1,
        description="Event stream: events held for one slow client; beyond, its stream "
        "closes and the client resumes from its last id.",
    )
    sse_buffer_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="Event stream: bytes of events held for one slow client; beyond, its "
        "stream closes and the client resumes from its last id.",
    )
    forwarded_allow_ips: str = Field(
        "",
        description="Proxies trusted to set X-Forwarded-For and X-Forwarded-Proto "
        "(uvicorn's meaning: comma-separated addresses or networks, or *); empty: "
        "trust no one, forwarded headers are ignored.",
    )
    header_timeout_seconds: float = Field(
        10,
        gt=0,
        description="`agent-runtime serve`: a connection that has not sent a whole "
        "request head within this many seconds is closed.",
    )
    max_connections: int = Field(
        4096,
        ge=1,
        description="`agent-runtime serve`: open connections per worker; beyond, new "
        "connections are answered 503.",
    )
    console_session_hours: float = Field(
        12,
        gt=0,
        description="Reviewer console: how long a login lasts (the cookie's and the "
        "server-side session's expiry).",
    )
    host: str = Field("127.0.0.1", description="Address `make run` binds to.")
    workers: int = Field(1, ge=1, description="`agent-runtime serve`: worker processes.")
    graceful_shutdown_seconds: int = Field(
        30, ge=1, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port `make run` binds to.")
    log_level: str = Field("info", description="uvicorn / service log level.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as one JSON object per line (time, level, "
        "logger, message, request_id, exc_info).",
    )

    @field_validator("api_key", "metrics_key")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty key would turn authentication off without a word: unset it instead.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty or blank: give a key, or unset the variable")
        return value

    @property
    def binds_loopback_only(self) -> bool:
        return self.host in {"127.0.0.1", "::1", "localhost"} or self.host.startswith("127.")

    def unauthenticated_remote_refusal(self) -> str | None:
        """Why serving would be unsafe with these settings, or None."""
        unsafe = self.api_key is None and not self.binds_loopback_only
        if unsafe and not self.allow_unauthenticated_remote:
            return (
                f"refusing to serve on {self.host} without AGENT_RUNTIME__API_KEY; set a key "
                "(or AGENT_RUNTIME__ALLOW_UNAUTHENTICATED_REMOTE=true)"
            )
        return None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """`AGENT_RUNTIME__*` variables that no setting reads (a misspelt setting is
    otherwise silently ignored), each with the setting it was probably meant to be."""
    known = [name.upper() for name in Settings.model_fields]
    out = []
    for name in sorted(environ if environ is not None else os.environ):
        setting = name[len(ENV_PREFIX) :].upper()
        if name.startswith(ENV_PREFIX) and setting not in known:
            guess = difflib.get_close_matches(setting, known, n=1, cutoff=0.8)
            out.append(f"{name} (did you mean {ENV_PREFIX}{guess[0]}?)" if guess else name)
    return out


def settings_error(exc: ValidationError) -> str:
    """A settings validation error as one line naming each variable."""
    return "; ".join(
        f"{ENV_PREFIX}{'.'.join(str(p) for p in error['loc']).upper()} "
        f"{str(error['msg']).removeprefix('Value error, ')}"
        for error in exc.errors()
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_or_exit() -> Settings:
    """The settings; if they are invalid, one line on stderr and exit 1 (no traceback):
    what a server started by any means (uvicorn, gunicorn) should do."""
    try:
        return get_settings()
    except ValidationError as exc:
        print(f"agent-runtime: error: {settings_error(exc)}", file=sys.stderr)
        raise SystemExit(1) from None
