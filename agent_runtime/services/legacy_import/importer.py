"""Writing: copy a legacy database, session by session, into this service's.

What is copied, per session, in one transaction (all or nothing):

* the session: title, description, created_at, last_activity, is_active,
  deleted_at (a soft-deleted session stays soft-deleted), with `version` 1 and a
  fresh random `messages_token`;
* its messages in the order the legacy `load_session` returned them:
  `ORDER BY timestamp`, ties in insertion order (rowid on SQLite, ctid on
  PostgreSQL), stored at positions 0..n-1; `tool_calls` and `metadata_json` (JSON
  strings) become JSON values;
* its agent context, `last_switch_at` set to the newest switch time (if any), and
  its switches in history order (switched_at, ties in insertion order).

Approvals are copied after the sessions (they have no foreign key, as before; in
variant A a `session_id` holding a legacy uuid `sessions.id` is translated to the
caller's id); the rows of one `call_id` are merged into one approval by the rule
in `rows`.

Idempotent: a session whose id is already in the target is skipped (not
compared, not changed) and reported; an approval whose `call_id` exists is
skipped. A second run therefore imports nothing. With `dry_run` the same
validation and counting happen, and nothing is written.

Rows this service cannot store (see `rows`) are reported and skipped, never
fatal, as are rows pointing at a missing parent. An invalid session row is
skipped with its messages, context and switches; an invalid message, switch or
approval row alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.db.migrations import pending_on_connection
from agent_runtime.errors import SchemaOutOfDateError
from agent_runtime.services._common import DB, atomic
from agent_runtime.services._sql import sql
from agent_runtime.services.legacy_import import rows as legacy
from agent_runtime.services.legacy_import.report import (
    ImportReport,
    InvalidRow,
    MergedApproval,
    ProgressCallback,
)
from agent_runtime.services.legacy_import.sources import OPTIONAL_TABLES, LegacySource, first_line
from agent_runtime.services.message_cache import message_cache, new_token
from models.queries import approvals as approvals_sql
from models.queries import messages as messages_sql
from models.queries import sessions as sessions_sql
from models.queries.agent_contexts import INSERT_CONTEXT, INSERT_SWITCH

__all__ = ["check_target_schema", "import_legacy"]

_BATCH = 500  # ids per IN (...) and approvals per transaction: under every parameter limit

# The target statements are those of models.queries (`?` placeholders, converted
# per dialect by `sql`): the message and approval INSERTs are the services' own.


async def _existing(db: DB, template: str, values: Sequence[str]) -> set[str]:
    """Which of `values` the target already holds; `template` is a `SELECT_EXISTING`
    of models.queries, whose `{marks}` takes one `?` per value."""
    found: set[str] = set()
    for start in range(0, len(values), _BATCH):
        chunk = list(values[start : start + _BATCH])
        marks = ", ".join("?" * len(chunk))
        _, rows = await db.execute_query(sql(db, template.format(marks=marks)), chunk)
        found.update(row[0] for row in rows)
    return found


async def check_target_schema(db: DB) -> None:
    """Raise `SchemaOutOfDateError` unless every migration is applied to `db`."""
    pending = await pending_on_connection(db)
    if pending:
        raise SchemaOutOfDateError(
            f"the target database schema is behind: {len(pending)} migration(s) pending "
            f"({pending[0]} .. {pending[-1]}); run `agent-runtime migrate` first"
        )


class _Importer:
    def __init__(
        self, db: DB, source: LegacySource, dry_run: bool, progress: ProgressCallback | None
    ) -> None:
        self.db = db
        self.source = source
        self.dry_run = dry_run
        self.progress = progress
        self.report = ImportReport(source.display, source.variant, dry_run)
        self.sessions: dict[
            Any, legacy.Session | None
        ] = {}  # legacy sessions.id -> row (None: invalid)
        self.contexts: dict[Any, legacy.Context | None] = {}  # legacy session_db_id -> context
        self.caller_ids: dict[Any, str] = {}  # legacy sessions.id -> caller's id (valid ones)
        self.callers: set[str] = set()
        self.present: set[str] = set()

    def invalid(self, table: str, row: Any, reason: str, rows: int = 1) -> None:
        self.report.invalid.append(InvalidRow(table, legacy.row_id(row), reason, rows))

    def advance(self) -> None:
        self.report.sessions_seen += 1
        if self.progress is not None:
            self.progress(1)

    async def run(self) -> ImportReport:
        self.report.missing_tables = [t for t in OPTIONAL_TABLES if not self.source.has(t)]
        await self.read_sessions()
        await self.read_contexts()
        self.present = await _existing(self.db, sessions_sql.SELECT_EXISTING, list(self.callers))

        tie = self.source.tie
        query = self.source.select("messages", f'"session_db_id", "timestamp", {tie}')
        group: list[Sequence[Any]] = []
        current: Any = None
        async for row in self.source.stream(query):
            if group and row[0] != current:
                await self.import_group(current, group)
                group = []
            current = row[0]
            group.append(row)
        if group:
            await self.import_group(current, group)
        # Sessions without messages.
        for db_id in list(self.sessions):
            await self.import_group(db_id, [])
        for db_id, context in self.contexts.items():  # contexts of no session
            rows = 1 + (len(context.switches) if context else 0)
            self.invalid("agent_contexts", f"of session_db_id {db_id!r}", "no such session", rows)

        await self.import_approvals()
        return self.report

    async def read_sessions(self) -> None:
        tie = self.source.tie
        for row in await self.source.fetch(self.source.select("sessions", tie)):
            db_id = row[0]
            try:
                session = legacy.session(row, self.source.variant)
                if session.caller_id in self.callers:
                    raise legacy.Invalid(f"session id {session.caller_id!r} appears twice")
            except legacy.Invalid as exc:
                self.sessions[db_id] = None
                self.invalid("sessions", db_id, str(exc))
                continue
            self.sessions[db_id] = session
            self.caller_ids[db_id] = session.caller_id
            self.callers.add(session.caller_id)

    async def read_contexts(self) -> None:
        if not self.source.has("agent_contexts"):
            return
        tie = self.source.tie
        by_legacy_id: dict[Any, legacy.Context] = {}
        for row in await self.source.fetch(self.source.select("agent_contexts", tie)):
            legacy_id, session_db_id = row[0], row[1]
            if session_db_id in self.contexts:
                self.invalid("agent_contexts", legacy_id, "a second context of its session")
                continue
            try:
                context: legacy.Context | None = legacy.context(row)
            except legacy.Invalid as exc:
                self.invalid("agent_contexts", legacy_id, f"{exc} (skipped with its switches)")
                context = None
            self.contexts[session_db_id] = context
            if context is not None:
                by_legacy_id[legacy_id] = context
        if not self.source.has("agent_switches"):
            return
        query = self.source.select("agent_switches", f'"context_db_id", "switched_at", {tie}')
        orphans: dict[Any, int] = {}
        for row in await self.source.fetch(query):
            context_id = row[0]
            context = by_legacy_id.get(context_id)
            if context is None:
                orphans[context_id] = orphans.get(context_id, 0) + 1
                continue
            try:
                context.switches.append(legacy.switch(row))
            except legacy.Invalid as exc:
                self.invalid("agent_switches", row[1], str(exc))
        for context_id, count in orphans.items():
            self.invalid(
                "agent_switches",
                f"of context_db_id {context_id!r}",
                "no such (valid) agent context",
                count,
            )

    async def import_group(self, db_id: Any, rows: list[Sequence[Any]]) -> None:
        """One legacy session and its messages (sorted), context and switches."""
        if db_id not in self.sessions:
            self.invalid("messages", f"of session_db_id {db_id!r}", "no such session", len(rows))
            return
        session = self.sessions.pop(db_id)
        context = self.contexts.pop(db_id, None)
        self.advance()
        if session is None:  # invalid: reported with its row; its dependants go with it
            dependants = len(rows) + (1 + len(context.switches) if context else 0)
            if dependants:
                self.invalid(
                    "messages/agent_contexts",
                    f"of session_db_id {db_id!r}",
                    "skipped with their invalid session",
                    dependants,
                )
            return
        if session.caller_id in self.present:
            self.report.sessions_present.append(session.caller_id)
            return

        messages = []
        for row in rows:
            try:
                messages.append(legacy.message(row))
            except legacy.Invalid as exc:
                self.invalid("messages", row[1], f"{exc} (session {session.caller_id!r})")
        switches = context.switches if context is not None else []
        if self.dry_run:
            self.count(messages, context, switches)
            return
        try:
            imported = await self.write(session, messages, context, switches)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise
            self.report.failed.append((session.caller_id, first_line(exc)))
            return
        if imported:
            self.count(messages, context, switches)
            message_cache.discard(session.caller_id)
        else:  # inserted meanwhile by someone else
            self.report.sessions_present.append(session.caller_id)

    def count(
        self, messages: list[Any], context: legacy.Context | None, switches: list[Any]
    ) -> None:
        self.report.sessions_imported += 1
        self.report.messages += len(messages)
        if context is not None:
            self.report.contexts += 1
            self.report.switches += len(switches)

    async def write(
        self,
        session: legacy.Session,
        messages: list[tuple[Any, ...]],
        context: legacy.Context | None,
        switches: list[tuple[Any, ...]],
    ) -> bool:
        sid = session.caller_id
        async with atomic(self.db) as conn:
            # RETURNING, not a row count: Tortoise's asyncpg client reports the OID
            # of "INSERT 0 1" as the count.
            inserted = await conn.execute_query_dict(
                sql(conn, sessions_sql.IMPORT), [sid, *session.values, new_token()]
            )
            if not inserted:
                return False
            if messages:
                await conn.execute_many(
                    sql(conn, messages_sql.INSERT),
                    [[sid, position, *m] for position, m in enumerate(messages)],
                )
            if context is not None:
                agent, created, updated, switch_count, metadata = context.values
                last_switch = max((s[2] for s in switches), default=None)
                rows = await conn.execute_query_dict(
                    sql(conn, INSERT_CONTEXT),
                    [sid, agent, created, updated, last_switch, switch_count, metadata],
                )
                context_id = rows[0]["id"]
                if switches:
                    await conn.execute_many(
                        sql(conn, INSERT_SWITCH),
                        [[context_id, position, *s] for position, s in enumerate(switches)],
                    )
        return True

    async def import_approvals(self) -> None:
        if not self.source.has("pending_approvals"):
            return
        tie = self.source.tie
        groups: dict[Any, list[Sequence[Any]]] = {}  # by call_id, oldest first
        for row in await self.source.fetch(
            self.source.select("pending_approvals", f'"created_at", {tie}')
        ):
            groups.setdefault(row[1], []).append(row)
        keys = [k for k in groups if isinstance(k, str)]
        present = await _existing(self.db, approvals_sql.SELECT_EXISTING, keys)
        merged: list[tuple[legacy.Approval, MergedApproval | None]] = []
        for call_id, rows in groups.items():
            if call_id in present:
                self.report.approvals_present += 1
                continue
            valid = []
            for row in rows:
                try:
                    valid.append(legacy.approval(row, self.caller_ids, self.source.variant))
                except legacy.Invalid as exc:
                    self.invalid("pending_approvals", row[0], str(exc))
            if valid:
                merged.append(legacy.merge(valid))
        for start in range(0, len(merged), _BATCH):
            batch = merged[start : start + _BATCH]
            if not self.dry_run:
                try:
                    batch = await self.write_approvals(batch)
                except Exception as exc:
                    if is_database_unavailable(exc):
                        raise
                    what = f"approvals {batch[0][0].call_id!r} .. {batch[-1][0].call_id!r}"
                    self.report.failed.append((what, first_line(exc)))
                    continue
            self.report.approvals += len(batch)
            self.report.merged.extend(m for _, m in batch if m is not None)

    async def write_approvals(
        self, batch: list[tuple[legacy.Approval, MergedApproval | None]]
    ) -> list[tuple[legacy.Approval, MergedApproval | None]]:
        """Insert a batch in one transaction; return the part that was inserted."""
        async with atomic(self.db) as conn:
            # Inserted meanwhile by someone else: skipped, and counted as such.
            taken = await _existing(
                conn, approvals_sql.SELECT_EXISTING, [a.call_id for a, _ in batch]
            )
            batch = [(a, m) for a, m in batch if a.call_id not in taken]
            self.report.approvals_present += len(taken)
            if batch:
                await conn.execute_many(
                    sql(conn, approvals_sql.INSERT),
                    [
                        [
                            a.call_id,
                            a.session_id,
                            a.tool_name,
                            a.arguments,
                            a.reason,
                            a.created_at,
                            a.status,
                        ]
                        for a, _ in batch
                    ],
                )
        return batch


async def import_legacy(
    db: DB,
    source: LegacySource,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Copy everything from the legacy `source` into `db` (see the module docstring).

    `progress(n)` is called as sessions are handled (n at a time, n = 1 today);
    `source.count_sessions()` is the total. Raises `SchemaOutOfDateError` if `db` is
    not fully migrated, `LegacyImportError` if the legacy database fails while being
    read (sessions imported so far stay imported: run again to finish).
    """
    await check_target_schema(db)
    importer = _Importer(db, source, dry_run, progress)
    return await importer.run()
