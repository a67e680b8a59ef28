"""Hand-written SQL for the hot paths (save and load), in both dialects.

Statements are written with `?` placeholders and converted once per dialect:
asyncpg wants `$1, $2, ...`.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields.data import JSON_DUMPS, JSON_LOADS

from agent_runtime.timeutils import as_utc

__all__ = ["db_datetime", "json_dumps", "json_loads", "json_or_none", "sql"]

json_dumps = JSON_DUMPS  # Tortoise's own JSON codec (orjson when installed)
json_loads = JSON_LOADS


@lru_cache(maxsize=256)
def _for_dialect(statement: str, dialect: str) -> str:
    if dialect != "postgres":
        return statement
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", statement)


def sql(db: BaseDBAsyncClient, statement: str) -> str:
    return _for_dialect(statement, db.capabilities.dialect)


def db_datetime(value: datetime | str) -> datetime:
    """A datetime column read by hand-written SQL, as aware UTC (SQLite gives ISO text)."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def json_or_none(value: Any) -> str | None:
    return None if value is None else json_dumps(value)
