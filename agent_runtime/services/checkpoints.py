"""LangGraph checkpoints: every query of `agent_runtime.integrations.langgraph`.

A thread is a session (`session_id` is the thread id). The first checkpoint of a
thread creates its session (as a save does: `append_messages` with no message),
and every checkpoint counts as activity on it (`last_activity`), reviving it if it
was soft-deleted, so retention never takes a thread in use for an idle session.
Deleting a session for good (hard delete, retention's purge) deletes its
checkpoints and writes (`delete_session_checkpoints`).

Values arrive serialized (LangGraph's `serde.dumps_typed`: a type name and
bytes); this module stores and returns them as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count

from agent_runtime.db.sqlite_engine import is_sqlite_connection, write_transaction
from agent_runtime.errors import InvalidInputError
from agent_runtime.schemas.validation import lookup_id, require_id, require_positive_int
from agent_runtime.services._common import DB, atomic, write_atomic
from agent_runtime.services._sql import json_dumps, json_loads, sql
from agent_runtime.services.save import append_messages
from agent_runtime.timeutils import utc_now
from models import Checkpoint, CheckpointWrite
from models.limits import CHECKPOINT_NS_MAX, ENUM_MAX, NAME_MAX
from models.queries import checkpoints as checkpoints_sql

__all__ = [
    "CheckpointPage",
    "StoredCheckpoint",
    "StoredWrite",
    "copy_thread",
    "delete_for_runs",
    "delete_session_checkpoints",
    "delete_thread",
    "get_checkpoint",
    "iter_checkpoints",
    "keep_latest_checkpoints",
    "list_checkpoints",
    "put_checkpoint",
    "put_writes",
    "trim_checkpoints",
]

_ID_BATCH = 500  # well under SQLite's and PostgreSQL's bound-parameter limits
_KEY_BATCH = 100  # (thread, namespace, checkpoint) keys per OR-ed filter
_PAGE = 100  # checkpoints read at a time by `iter_checkpoints`, `list_checkpoints`

_CHECKPOINT_FIELDS = (
    "id",
    "session_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "type",
    "checkpoint",
    "metadata",
)
_WRITE_FIELDS = ("checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type", "blob")


@dataclass(frozen=True)
class StoredWrite:
    """A pending write, as `put_writes` stored it."""

    task_id: str
    channel: str
    type: str | None
    blob: bytes
    task_path: str = ""
    idx: int = 0


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as `put_checkpoint` stored it, with its pending writes in the
    order LangGraph applies them (task path, task id, index)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: dict[str, Any]
    writes: list[StoredWrite] = field(default_factory=list)


def _ns(value: Any) -> str:
    if not isinstance(value, str) or len(value) > CHECKPOINT_NS_MAX:
        raise InvalidInputError(
            f"checkpoint_ns must be a string of at most {CHECKPOINT_NS_MAX} characters"
        )
    return value


def _bytes(value: Any) -> bytes:
    return bytes(value) if not isinstance(value, bytes) else value


async def _touch_session(conn: DB, thread_id: str, now: datetime) -> None:
    """Note activity on the thread's session, creating (or reviving) it if needed."""
    touched = await conn.execute_query_dict(
        sql(conn, checkpoints_sql.TOUCH_VISIBLE + " RETURNING id"), [now, thread_id]
    )
    if not touched:  # unknown or soft-deleted: as a save (of no message) would
        await append_messages(conn, thread_id, [], now)


@lru_cache(maxsize=1024)
def _stored_id(value: str, what: str) -> str:
    """`require_id` of a string, remembered: a graph's every step repeats its thread,
    checkpoint and task ids, and pydantic took ~10 us an id (refusals are not cached)."""
    return require_id(value, what)


def _valid_id(value: Any, what: str) -> str:
    return _stored_id(value, what) if type(value) is str else require_id(value, what)


async def put_checkpoint(
    db: DB,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    *,
    parent_checkpoint_id: str | None,
    type: str,
    checkpoint: bytes,
    metadata: Mapping[str, Any],
) -> None:
    """Store a checkpoint (replacing one of the same id), creating the thread's
    session if needed, in one transaction.

    Hand-written SQL, in as few trips as the backend allows (every graph step makes
    one), when the session is there to touch (the usual case): on PostgreSQL one
    statement touches it and upserts the checkpoint; on SQLite's own connection one
    trip to its thread (`write_transaction`: BEGIN IMMEDIATE, the touch, the upsert,
    COMMIT), the upsert's session id read from the visible session, so NULL, a NOT
    NULL violation that rolls it all back, without one. A new (or soft-deleted)
    session takes the long way, which creates (or revives) it."""
    thread_id = _valid_id(thread_id, "session_id")
    checkpoint_ns = _ns(checkpoint_ns)
    checkpoint_id = _valid_id(checkpoint_id, "checkpoint_id")
    if parent_checkpoint_id is not None:
        parent_checkpoint_id = _valid_id(parent_checkpoint_id, "parent_checkpoint_id")
    if not isinstance(type, str) or len(type) > ENUM_MAX:
        raise InvalidInputError(f"type must be a string of at most {ENUM_MAX} characters")
    run_id = metadata.get("run_id")
    now = utc_now()
    values = [
        checkpoint_ns,
        checkpoint_id,
        parent_checkpoint_id,
        None if run_id is None else _valid_id(str(run_id), "run_id"),
        type,
        _bytes(checkpoint),
        json_dumps(dict(metadata)),
        now,
    ]
    if db.capabilities.dialect == "postgres":
        # One statement, so one transaction of its own (or a part of the caller's).
        rows = await db.execute_query_dict(
            sql(db, checkpoints_sql.PUT_TOUCHING), [now, thread_id, *values]
        )
        if rows:
            return
    if is_sqlite_connection(db):
        try:
            async with write_transaction(db) as conn:  # both statements go with the COMMIT
                await conn.execute_many(checkpoints_sql.TOUCH_VISIBLE, [[now, thread_id]])
                await conn.execute_many(
                    checkpoints_sql.INSERT_CHECKPOINT_OF_VISIBLE, [[thread_id, *values]]
                )
            return
        except IntegrityError:
            pass  # no visible session: nothing was written
    async with write_atomic(db) as conn:
        await _touch_session(conn, thread_id, now)
        # On SQLite's lazy transaction, goes with the COMMIT.
        await conn.execute_many(
            sql(conn, checkpoints_sql.INSERT_CHECKPOINT), [[thread_id, *values]]
        )


async def put_writes(
    db: DB,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    writes: Sequence[tuple[int, StoredWrite]],
    *,
    replace: bool,
) -> None:
    """Store the writes of tasks against a checkpoint, each `(idx, write)`. A write
    whose (task, idx) is stored already is kept as it was, or with `replace`
    replaced (LangGraph's special channels: an error, an interrupt...).

    Hand-written SQL: one multi-row INSERT (no transaction needed) when the writes
    fit one statement, as they do for any real task."""
    thread_id = _valid_id(thread_id, "session_id")
    checkpoint_ns = _ns(checkpoint_ns)
    checkpoint_id = _valid_id(checkpoint_id, "checkpoint_id")
    if not writes:
        return
    now = utc_now()
    rows: dict[tuple[str, int], tuple[Any, ...]] = {}
    for idx, write in writes:
        channel, type_ = write.channel, write.type
        if not isinstance(channel, str) or len(channel) > NAME_MAX:
            raise InvalidInputError(f"channel must be a string of at most {NAME_MAX} characters")
        if type_ is not None and (not isinstance(type_, str) or len(type_) > ENUM_MAX):
            raise InvalidInputError(f"type must be a string of at most {ENUM_MAX} characters")
        task_id = _valid_id(write.task_id, "task_id")
        key = (task_id, int(idx))
        if key in rows and not replace:
            continue  # the first is kept, as a stored one would be
        # With `replace` the last one wins (PostgreSQL's upsert refuses a row twice).
        rows[key] = (channel, type_, _bytes(write.blob), str(write.task_path))
    values: list[Any] = []
    for (task_id, idx), (channel, type_, blob, task_path) in rows.items():
        values += (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type_)
        values += (blob, task_path, now)
    width = len(checkpoints_sql.WRITE_COLUMNS)

    def statement(rows: int) -> str:
        return checkpoints_sql.INSERT_WRITES(rows, replace=replace)

    step = _KEY_BATCH * width
    if len(values) <= step:  # one statement: atomic without a transaction
        await db.execute_query(sql(db, statement(len(rows))), values)
        return
    async with atomic(db) as conn:
        for start in range(0, len(values), step):
            chunk = values[start : start + step]
            await conn.execute_query(sql(conn, statement(len(chunk) // width)), chunk)


def _key_filter(keys: Iterable[tuple[str, str, str]]) -> Q:
    """Rows of any of the (thread, namespace, checkpoint id) keys."""
    return Q(
        *(Q(session_id=t, checkpoint_ns=ns, checkpoint_id=c) for t, ns, c in keys),
        join_type=Q.OR,
    )


async def _with_writes(db: DB, rows: list[dict[str, Any]]) -> list[StoredCheckpoint]:
    """The checkpoints of `rows`, each with its pending writes."""
    keys = [(r["session_id"], r["checkpoint_ns"], r["checkpoint_id"]) for r in rows]
    found: dict[tuple[str, str, str], list[StoredWrite]] = defaultdict(list)
    for start in range(0, len(keys), _KEY_BATCH):
        batch = keys[start : start + _KEY_BATCH]
        writes = await db.execute_query_dict(
            sql(db, checkpoints_sql.SELECT_WRITES(len(batch))),
            [value for key in batch for value in key],
        )
        for w in writes:
            found[(w["session_id"], w["checkpoint_ns"], w["checkpoint_id"])].append(
                StoredWrite(
                    w["task_id"],
                    w["channel"],
                    w["type"],
                    _bytes(w["blob"]),
                    w["task_path"],
                    w["idx"],
                )
            )
    return [
        StoredCheckpoint(
            thread_id=r["session_id"],
            checkpoint_ns=r["checkpoint_ns"],
            checkpoint_id=r["checkpoint_id"],
            parent_checkpoint_id=r["parent_checkpoint_id"],
            type=r["type"],
            checkpoint=_bytes(r["checkpoint"]),
            metadata=r["metadata"] or {},
            writes=sorted(found.get(key, []), key=lambda w: (w.task_path, w.task_id, w.idx)),
        )
        for r, key in zip(rows, keys, strict=True)
    ]


async def get_checkpoint(
    db: DB, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None = None
) -> StoredCheckpoint | None:
    """The checkpoint `checkpoint_id` of the thread's namespace, or (None) its latest;
    None if there is none.

    One statement (LangGraph reads the latest checkpoint at the start of every run):
    the checkpoint's row (`w` = 0), then a row per pending write (`w` = 1), the
    columns shared as `models.queries.checkpoints` says."""
    thread_id = lookup_id(thread_id)
    checkpoint_ns = _ns(checkpoint_ns)
    statement, values = checkpoints_sql.GET_LATEST, [thread_id, checkpoint_ns]
    if checkpoint_id is not None:
        statement = checkpoints_sql.GET_ONE
        values.append(lookup_id(checkpoint_id, "checkpoint_id"))
    rows = await db.execute_query_dict(sql(db, statement), [*values, thread_id, checkpoint_ns])
    found = [r for r in rows if r["w"] == 0]
    if not found:
        return None
    row = found[0]
    writes = [
        StoredWrite(w["key"], w["a"], w["type"], _bytes(w["blob"]), w["b"], w["idx"])
        for w in rows
        if w["w"] == 1
    ]
    return StoredCheckpoint(
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=row["key"],
        parent_checkpoint_id=row["a"],
        type=row["type"],
        checkpoint=_bytes(row["blob"]),
        metadata=json_loads(row["b"]) or {},
        writes=sorted(writes, key=lambda w: (w.task_path, w.task_id, w.idx)),
    )


def _matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(key in metadata and metadata[key] == value for key, value in wanted.items())


@dataclass(frozen=True)
class CheckpointPage:
    """One page of `list_checkpoints`: the checkpoints of the rows read that match the
    metadata filter (so maybe fewer than were read, or none), and `next_key`, the
    keyset position after the last row read, None when no row is left."""

    items: list[StoredCheckpoint]
    next_key: tuple[str, int] | None  # (checkpoint_id, row id) of the last row read


async def list_checkpoints(
    db: DB,
    *,
    thread_id: str | None = None,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    limit: int = _PAGE,
    after: tuple[str, int] | None = None,
) -> CheckpointPage:
    """One keyset page of checkpoints, newest (greatest checkpoint id) first, after
    the position `after` (a previous page's `next_key`): `limit` rows are read, of
    one thread and/or namespace, or all; only `checkpoint_id`; only those before
    `before` (a checkpoint id); then only those whose metadata has each key of
    `metadata` with that value are kept (see `CheckpointPage`)."""
    require_positive_int(limit, "limit")
    query = Checkpoint.all().using_db(db)
    if thread_id is not None:
        query = query.filter(session_id=lookup_id(thread_id))
    if checkpoint_ns is not None:
        query = query.filter(checkpoint_ns=_ns(checkpoint_ns))
    if checkpoint_id is not None:
        query = query.filter(checkpoint_id=lookup_id(checkpoint_id, "checkpoint_id"))
    if before is not None:
        query = query.filter(checkpoint_id__lt=lookup_id(before, "before"))
    if after is not None:
        after_id = lookup_id(after[0], "cursor")
        after_row = require_positive_int(after[1], "cursor", allow_zero=True)
        query = query.filter(
            Q(checkpoint_id__lt=after_id) | Q(checkpoint_id=after_id, id__lt=after_row)
        )
    rows = (
        await query.order_by("-checkpoint_id", "-id").limit(limit + 1).values(*_CHECKPOINT_FIELDS)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = (rows[-1]["checkpoint_id"], rows[-1]["id"]) if more else None
    if metadata:
        rows = [r for r in rows if _matches(r["metadata"] or {}, metadata)]
    return CheckpointPage(await _with_writes(db, rows) if rows else [], next_key)


async def iter_checkpoints(
    db: DB,
    *,
    thread_id: str | None = None,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    limit: int | None = None,
    page_size: int = _PAGE,
) -> AsyncIterator[StoredCheckpoint]:
    """Checkpoints, newest (greatest checkpoint id) first: of one thread and/or
    namespace, or all; only `checkpoint_id`; only those before `before` (a
    checkpoint id); only those whose metadata has each key of `metadata` with that
    value; at most `limit`. Read `page_size` at a time (`list_checkpoints`; no
    transaction is held between pages)."""
    if limit is not None:
        require_positive_int(limit, "limit", allow_zero=True)
        if limit == 0:
            return
    require_positive_int(page_size, "page_size")
    sent = 0
    after: tuple[str, int] | None = None
    while True:
        size = page_size
        if limit is not None and not metadata:  # every row read is sent: no more than needed
            size = min(page_size, limit - sent)
        page = await list_checkpoints(
            db,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            metadata=metadata,
            limit=size,
            after=after,
        )
        items = page.items if limit is None else page.items[: limit - sent]
        for stored in items:
            yield stored
        sent += len(items)
        if page.next_key is None or (limit is not None and sent >= limit):
            return
        after = page.next_key


async def _delete_keys(conn: DB, keys: list[tuple[str, str, str]]) -> None:
    """Delete these checkpoints and their writes."""
    for start in range(0, len(keys), _KEY_BATCH):
        batch = keys[start : start + _KEY_BATCH]
        await CheckpointWrite.filter(_key_filter(batch)).using_db(conn).delete()
        await Checkpoint.filter(_key_filter(batch)).using_db(conn).delete()


async def delete_session_checkpoints(db: DB, session_ids: Sequence[str]) -> None:
    """Delete every checkpoint and write of these sessions (threads), in the
    caller's transaction (deleting a session, retention's purge)."""
    for start in range(0, len(session_ids), _ID_BATCH):
        batch = list(session_ids[start : start + _ID_BATCH])
        await CheckpointWrite.filter(session_id__in=batch).using_db(db).delete()
        await Checkpoint.filter(session_id__in=batch).using_db(db).delete()


async def delete_thread(db: DB, thread_id: str) -> None:
    """Delete the thread's checkpoints and writes (its session stays)."""
    thread_id = lookup_id(thread_id)
    async with atomic(db) as conn:
        await delete_session_checkpoints(conn, [thread_id])


async def delete_for_runs(db: DB, run_ids: Sequence[str]) -> int:
    """Delete the checkpoints written by these runs (`metadata["run_id"]`), and their
    writes; return how many checkpoints."""
    ids = [lookup_id(str(r), "run_id") for r in run_ids]
    deleted = 0
    async with atomic(db) as conn:
        for start in range(0, len(ids), _ID_BATCH):
            rows = (
                await Checkpoint.filter(run_id__in=ids[start : start + _ID_BATCH])
                .using_db(conn)
                .values_list("session_id", "checkpoint_ns", "checkpoint_id")
            )
            await _delete_keys(conn, [(r[0], r[1], r[2]) for r in rows])
            deleted += len(rows)
    return deleted


def _copied(row: dict[str, Any], target: str, now: datetime) -> dict[str, Any]:
    """A row's values as a new row of the thread `target`."""
    values = {key: value for key, value in row.items() if key != "id"}
    return {**values, "session_id": target, "created_at": now}


async def copy_thread(db: DB, source_thread_id: str, target_thread_id: str) -> int:
    """Copy every checkpoint and write of a thread to another (creating its
    session; what the target has already under the same ids stays); return how
    many checkpoints. Nothing happens when the source has none."""
    source = lookup_id(source_thread_id)
    target = require_id(target_thread_id)
    copied = 0
    now = utc_now()
    async with atomic(db) as conn:
        last_id = 0
        while True:
            rows = (
                await Checkpoint.filter(session_id=source, id__gt=last_id)
                .using_db(conn)
                .order_by("id")
                .limit(_ID_BATCH)
                .values(*_CHECKPOINT_FIELDS, "run_id", "created_at")
            )
            if not rows:
                break
            if not copied:
                await _touch_session(conn, target, now)
            last_id = rows[-1]["id"]
            await Checkpoint.bulk_create(
                [Checkpoint(**_copied(r, target, now)) for r in rows],
                ignore_conflicts=True,
                using_db=conn,
            )
            copied += len(rows)
        last_id = 0
        while copied:
            writes = (
                await CheckpointWrite.filter(session_id=source, id__gt=last_id)
                .using_db(conn)
                .order_by("id")
                .limit(_ID_BATCH)
                .values("id", "task_path", *_WRITE_FIELDS)
            )
            if not writes:
                break
            last_id = writes[-1]["id"]
            await CheckpointWrite.bulk_create(
                [CheckpointWrite(**_copied(w, target, now)) for w in writes],
                ignore_conflicts=True,
                using_db=conn,
            )
    return copied


async def _trim(conn: DB, thread_id: str, checkpoint_ns: str, keep: int) -> int:
    """Delete all but the `keep` (>= 1) latest checkpoints of one namespace of a
    thread, and the writes against them; return how many checkpoints."""
    oldest_kept = (
        await Checkpoint.filter(session_id=thread_id, checkpoint_ns=checkpoint_ns)
        .using_db(conn)
        .order_by("-checkpoint_id")
        .offset(keep - 1)
        .first()
        .values_list("checkpoint_id", flat=True)
    )
    if oldest_kept is None:
        return 0
    older = Q(session_id=thread_id, checkpoint_ns=checkpoint_ns, checkpoint_id__lt=oldest_kept)
    await CheckpointWrite.filter(older).using_db(conn).delete()
    return int(await Checkpoint.filter(older).using_db(conn).delete())


async def _over(conn: DB, keep: int, thread_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The (thread, namespace) pairs holding more than `keep` checkpoints, with their
    count: of these threads, or of all."""
    query = Checkpoint.all().using_db(conn)
    if thread_ids is not None:
        query = query.filter(session_id__in=thread_ids)
    return list(
        await query.annotate(count=Count("id"))
        .group_by("session_id", "checkpoint_ns")
        .filter(count__gt=keep)
        .values("session_id", "checkpoint_ns", "count")
    )


async def keep_latest_checkpoints(db: DB, thread_ids: Sequence[str], keep: int) -> int:
    """In each namespace of each thread, keep the `keep` latest checkpoints and the
    writes against them, and delete the rest (all of it with `keep` 0); return how
    many checkpoints were deleted."""
    keep = require_positive_int(keep, "keep", allow_zero=True)
    ids = list(dict.fromkeys(lookup_id(t, "thread_id") for t in thread_ids))
    deleted = 0
    async with atomic(db) as conn:
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start : start + _ID_BATCH]
            if keep == 0:
                deleted += await Checkpoint.filter(session_id__in=batch).using_db(conn).count()
                await delete_session_checkpoints(conn, batch)
                continue
            # Only the namespaces over the limit: one statement for the batch, however
            # many of its threads have nothing to trim.
            for row in await _over(conn, keep, batch):
                deleted += await _trim(conn, row["session_id"], row["checkpoint_ns"], keep)
    return deleted


async def trim_checkpoints(db: DB, keep: int, *, dry_run: bool = False) -> int:
    """Retention: in every namespace of every thread, keep the `keep` (>= 1) latest
    checkpoints, delete the older ones and their writes; return how many
    checkpoints (with `dry_run`, would be: nothing is deleted)."""
    keep = require_positive_int(keep, "keep")
    over = await _over(db, keep)
    if dry_run:
        return sum(int(row["count"]) - keep for row in over)
    deleted = 0
    for row in over:  # a transaction per thread namespace: no long lock
        async with atomic(db) as conn:
            deleted += await _trim(conn, row["session_id"], row["checkpoint_ns"], keep)
    return deleted
