"""The legacy design, re-implemented on SQLAlchemy 2.x async from the reference doc
(`shared/reference/legacy-agent-runtime.md`), defects included, so that the comparison is
with what users run today:

* variant B schema made by `create_all`: `sessions.id` is the caller's id; messages have
  uuid ids, a naive UTC `timestamp`, and JSON kept as strings in TEXT columns;
  `pending_approvals.call_id` is not unique;
* `save_session` deletes every message of the session and inserts them all again, each
  stamped with the same `now()`; `load_session` orders by that timestamp;
* `save_pending_approval` is SELECT-by-call_id then INSERT (racy, as it was);
* one `AsyncSession` per call (the legacy `get_db`), ORM objects, commit per call; the
  engine as the legacy `init_database` built it (URL conversion, `pool_pre_ping`, the
  design note's SQLite pragmas in a connect event, default pool).

Where the doc is silent we give the legacy the benefit of the doubt: messages carry the
legacy models' indexes (so the per-session DELETE and SELECT are index lookups), and
`pending_approvals` has plain indexes on session_id, call_id, status and created_at.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    event,
    select,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.data import Message

__all__ = ["Legacy", "LegacyDatabase", "LegacyDatabaseService"]

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-64000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA busy_timeout=30000",
)


def _utcnow() -> datetime:
    # The legacy wrote datetime.now(timezone.utc) into naive columns: UTC wall-clock time.
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _uuid() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class SessionModel(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow)
    last_activity: Mapped[datetime] = mapped_column(DateTime, default=_utcnow, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)


class MessageModel(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("idx_session_timestamp", "session_db_id", "timestamp"),
        Index("idx_role_timestamp", "role", "timestamp"),
        CheckConstraint("role IN ('user', 'assistant', 'system', 'tool')", name="valid_role"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    session_db_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(50), index=True)
    content: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(DateTime, default=_utcnow, index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    tool_call_id: Mapped[str | None] = mapped_column(String(255))
    tool_calls: Mapped[str | None] = mapped_column(Text)  # JSON string
    token_count: Mapped[int | None] = mapped_column(Integer)
    metadata_json: Mapped[str | None] = mapped_column(Text)  # JSON string

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name:
            result["name"] = self.name
        if self.tool_call_id:
            result["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            result["tool_calls"] = json.loads(self.tool_calls)
        return result


class PendingApproval(Base):
    __tablename__ = "pending_approvals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    approval_id: Mapped[str] = mapped_column(String(255))  # = call_id
    session_id: Mapped[str] = mapped_column(String(255), index=True)  # no foreign key
    call_id: Mapped[str] = mapped_column(String(255), index=True)  # not unique: the defect
    tool_name: Mapped[str] = mapped_column(String(255))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow, index=True)
    status: Mapped[str] = mapped_column(String(50), default="pending", index=True)


class LegacyDatabase:
    """The legacy module globals (engine, session maker) held per instance, so that a
    SQLite and a PostgreSQL engine can live in one process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    def init_database(self) -> None:
        url = self.url
        if url.startswith("sqlite:///"):
            url = url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
        elif url.startswith("postgresql://"):
            url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
        engine = create_async_engine(url, echo=False, pool_pre_ping=True)
        if url.startswith("sqlite"):

            @event.listens_for(engine.sync_engine, "connect")
            def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                for pragma in _PRAGMAS:
                    cursor.execute(pragma)
                cursor.close()

        self._engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    async def init_db(self) -> None:
        assert self._engine is not None, "call init_database() first"
        async with self._engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def close_db(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    @asynccontextmanager
    async def get_db(self) -> AsyncIterator[AsyncSession]:
        """The legacy request dependency: commit on success, roll back on error."""
        assert self._sessions is not None, "call init_database() first"
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except Exception:
                await session.rollback()
                raise


class LegacyDatabaseService:
    """The legacy `DatabaseService` methods the workloads use, with their behaviour."""

    async def save_session(
        self,
        db: AsyncSession,
        session_id: str,
        messages: list[Message],
        last_activity: datetime,
    ) -> None:
        result = await db.execute(
            select(SessionModel).where(
                SessionModel.id == session_id, SessionModel.deleted_at.is_(None)
            )
        )
        session = result.scalar_one_or_none()
        if session is None:
            session = SessionModel(
                id=session_id,
                created_at=_utcnow(),
                last_activity=_naive(last_activity),
                is_active=True,
            )
            db.add(session)
            await db.flush()
        else:
            session.last_activity = _naive(last_activity)
            session.is_active = True

        if not session.title and messages:
            first_user = next((m for m in messages if m.get("role") == "user"), None)
            if first_user and first_user.get("content"):
                session.title = first_user["content"][:500]

        now = _utcnow()  # one instant for the whole save: the ordering defect
        new_messages = []
        for msg in messages:
            content = msg.get("content")
            if content is None and not msg.get("tool_calls"):
                content = ""
            new_messages.append(
                MessageModel(
                    id=_uuid(),
                    session_db_id=session.id,
                    role=msg.get("role", "user"),
                    content=content,
                    timestamp=now,
                    name=msg.get("name"),
                    tool_call_id=msg.get("tool_call_id"),
                    tool_calls=json.dumps(msg["tool_calls"]) if msg.get("tool_calls") else None,
                    token_count=msg.get("token_count"),
                    metadata_json=json.dumps(msg["metadata"]) if msg.get("metadata") else None,
                )
            )
        await db.execute(delete(MessageModel).where(MessageModel.session_db_id == session.id))
        db.add_all(new_messages)
        await db.commit()

    async def load_session(self, db: AsyncSession, session_id: str) -> dict[str, Any] | None:
        result = await db.execute(
            select(SessionModel).where(
                SessionModel.id == session_id, SessionModel.deleted_at.is_(None)
            )
        )
        session = result.scalar_one_or_none()
        if session is None:
            return None
        rows = await db.execute(
            select(MessageModel)
            .where(MessageModel.session_db_id == session.id)
            .order_by(MessageModel.timestamp.asc())
        )
        return {
            "session_id": session.id,
            "messages": [m.to_dict() for m in rows.scalars().all()],
            "last_activity": session.last_activity,
            "created_at": session.created_at,
        }

    async def save_pending_approval(
        self,
        db: AsyncSession,
        session_id: str,
        call_id: str,
        tool_name: str,
        arguments: dict[str, Any],
        reason: str | None = None,
    ) -> None:
        result = await db.execute(select(PendingApproval).where(PendingApproval.call_id == call_id))
        if result.scalar_one_or_none() is not None:
            return
        db.add(
            PendingApproval(
                id=_uuid(),
                approval_id=call_id,
                session_id=session_id,
                call_id=call_id,
                tool_name=tool_name,
                arguments=arguments,
                reason=reason,
                created_at=_utcnow(),
                status="pending",
            )
        )
        await db.commit()

    async def get_pending_approvals(
        self, db: AsyncSession, session_id: str
    ) -> list[dict[str, Any]]:
        result = await db.execute(
            select(PendingApproval)
            .where(PendingApproval.session_id == session_id, PendingApproval.status == "pending")
            .order_by(PendingApproval.created_at.asc())
        )
        return [
            {
                "call_id": a.call_id,
                "tool_name": a.tool_name,
                "arguments": a.arguments,
                "reason": a.reason,
                "created_at": a.created_at,
            }
            for a in result.scalars().all()
        ]


class Legacy:
    """The workloads' view of the legacy service: one `get_db()` session per call."""

    name = "legacy"

    def __init__(self, url: str) -> None:
        self._db = LegacyDatabase(url)
        self._service = LegacyDatabaseService()

    async def open(self) -> None:
        self._db.init_database()
        await self._db.init_db()

    async def close(self) -> None:
        await self._db.close_db()

    async def seed(self, session_id: str, messages: list[Message]) -> None:
        await self.save(session_id, messages)

    async def save(self, session_id: str, messages: list[Message]) -> None:
        async with self._db.get_db() as db:
            await self._service.save_session(db, session_id, messages, datetime.now(UTC))

    async def load(self, session_id: str) -> dict[str, Any] | None:
        async with self._db.get_db() as db:
            return await self._service.load_session(db, session_id)

    async def save_approval(
        self, session_id: str, call_id: str, tool_name: str, arguments: dict[str, Any]
    ) -> None:
        async with self._db.get_db() as db:
            await self._service.save_pending_approval(db, session_id, call_id, tool_name, arguments)

    async def pending_approvals(self, session_id: str) -> list[dict[str, Any]]:
        async with self._db.get_db() as db:
            return await self._service.get_pending_approvals(db, session_id)
