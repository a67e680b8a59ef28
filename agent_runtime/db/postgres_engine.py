"""Tortoise's asyncpg engine, without asyncpg's reset query at every release.

asyncpg's pool sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
RESET ALL;` each time a connection goes back to the pool: one more round trip for
every statement run outside a transaction and for every transaction (each GET,
save and LangGraph checkpoint). This service leaves no session state on a pooled
connection: its advisory locks are transaction-level (`pg_advisory_xact_lock`), it
declares no cursor and SETs nothing, and it LISTENs and holds the migration lock
on dedicated direct connections (`events/listener.py`, `db/migration_lock.py`).
So here the reset only costs; it is not sent. On release asyncpg still rolls back
a transaction left open and drops the connection's listeners (`Connection._reset`).

Used through the engine path `agent_runtime.db.postgres_engine` in the Tortoise config.
"""

from __future__ import annotations

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient

__all__ = ["PooledConnection", "PostgresClient", "client_class"]


class PooledConnection(asyncpg.connection.Connection):
    def get_reset_query(self) -> str:
        """asyncpg's documented hook: nothing to reset (see the module's docstring)."""
        return ""


class PostgresClient(AsyncpgDBClient):
    connection_class = PooledConnection


client_class = PostgresClient
