"""Fresh databases for one run: one per implementation (and one for the HTTP server),
so that no implementation measures another's rows. SQLite files live in a temp dir;
PostgreSQL databases are named `bench_<pid>_<role>` and dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from harness.servers import ROOT

__all__ = [
    "REPO_ROOT",
    "ROLES",
    "Databases",
    "Unavailable",
    "aerich_upgrade",
    "check_postgres",
    "postgres",
    "sqlite",
]

REPO_ROOT = ROOT  # the repository, as the harness knows it
ROLES = (
    "legacy",
    "ours",
    "floor",
    "http",
    "rest_ours",
    "rest_floor",
    "hitl",
    "pooler_direct",
    "pooler_pgbouncer",
    "langgraph_ours",
    "langgraph_theirs",
)


@dataclass(frozen=True)
class Databases:
    backend: str  # "sqlite" or "postgres"
    version: str
    urls: dict[str, str]  # role -> database URL (sqlite:///... or postgresql://...)


async def aerich_upgrade(url: str) -> None:
    """Migrate `url` with this project's real CLI, as its README says to."""
    aerich = Path(sys.executable).parent / "aerich"
    command = str(aerich) if aerich.exists() else (shutil.which("aerich") or "aerich")
    proc = await asyncio.create_subprocess_exec(
        command,
        "upgrade",
        cwd=REPO_ROOT,
        env={**os.environ, "AGENT_RUNTIME__DB_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"aerich upgrade failed:\n{output.decode(errors='replace')}")


@asynccontextmanager
async def sqlite() -> AsyncIterator[Databases]:
    folder = Path(tempfile.mkdtemp(prefix="bench_sqlite_"))
    try:
        # An absolute path: sqlite:/// + /tmp/... = sqlite:////tmp/...
        urls = {role: f"sqlite:///{folder / f'{role}.db'}" for role in ROLES}
        await asyncio.gather(aerich_upgrade(urls["floor"]), aerich_upgrade(urls["http"]))
        yield Databases("sqlite", sqlite3.sqlite_version, urls)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _with_database(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    scheme = "postgresql"  # the spelling every implementation accepts
    return urlunsplit((scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Unavailable(RuntimeError):
    """A requested backend cannot be used; the message says what to do."""


async def _connect_admin(admin_url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(
            f"cannot reach PostgreSQL at --pg-url ({exc}); start it, or run with --backends sqlite"
        ) from exc


async def check_postgres(admin_url: str) -> None:
    """Fail before any measurement rather than after the SQLite half of a run."""
    await (await _connect_admin(admin_url)).close()


@asynccontextmanager
async def postgres(admin_url: str) -> AsyncIterator[Databases]:
    admin = await _connect_admin(admin_url)
    names = {role: f"bench_{os.getpid()}_{role}" for role in ROLES}
    try:
        version = str(await admin.fetchval("SHOW server_version"))
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        urls = {role: _with_database(admin_url, name) for role, name in names.items()}
        await asyncio.gather(aerich_upgrade(urls["floor"]), aerich_upgrade(urls["http"]))
        yield Databases("postgres", version, urls)
    finally:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
