"""Sizes of stored values, defined once: the models, the pydantic types and the
legacy import all read them here."""

from __future__ import annotations

__all__ = [
    "AGENT_MAX",
    "BIGINT_MAX",
    "CHECKPOINT_NS_MAX",
    "ENUM_MAX",
    "ID_MAX",
    "INT_MAX",
    "JSON_DEPTH_MAX",
    "NAME_MAX",
    "TITLE_MAX",
]

ID_MAX = 255  # session ids and tool call ids: VARCHAR(255) (what else an id is: schemas/types.py)
NAME_MAX = 255  # tool names, message names, tool_call_id, decided_by: VARCHAR(255)
TITLE_MAX = 500  # session titles: VARCHAR(500); longer ones are cut, as the legacy service did
AGENT_MAX = 100  # agent names: VARCHAR(100)
ENUM_MAX = 50  # CharEnumField columns (roles, statuses)
INT_MAX = 2**31 - 1  # INTEGER columns (token counts, switch counts)
BIGINT_MAX = 2**63 - 1  # BIGINT columns: event ids (Last-Event-ID, `after`)
# LangGraph checkpoint namespaces: "" for the root graph, "node:task_id|node:task_id..."
# for subgraphs (about 45 characters a level).
CHECKPOINT_NS_MAX = 1000
JSON_DEPTH_MAX = 64  # deeper JSON is refused: PostgreSQL's JSONB and recursion limits
