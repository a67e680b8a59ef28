"""`python -m agent_runtime`: check configuration and schema, then serve with uvicorn."""

from __future__ import annotations

import asyncio
import logging
import sys

from agent_runtime.config import get_settings
from agent_runtime.db.config import database_url
from agent_runtime.db.migrations import ensure_schema
from agent_runtime.errors import AgentRuntimeError


def main() -> int:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s"
    )
    refusal = settings.unauthenticated_remote_refusal()
    if refusal:
        print(f"agent-runtime: error: {refusal}", file=sys.stderr)
        return 1
    try:
        db = database_url(settings)
        asyncio.run(ensure_schema(db, auto_migrate=settings.auto_migrate))
    except AgentRuntimeError as exc:
        print(f"agent-runtime: error: {exc}", file=sys.stderr)
        return 1
    import uvicorn

    uvicorn.run(
        "agent_runtime.main:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
