"""Introspect a database schema into comparable, name-independent facts."""

from __future__ import annotations

import re
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient


async def describe(connection: BaseDBAsyncClient) -> dict[str, Any]:
    if connection.capabilities.dialect == "postgres":
        return await _describe_postgres(connection)
    return await _describe_sqlite(connection)


async def _describe_sqlite(connection: BaseDBAsyncClient) -> dict[str, Any]:
    tables = await connection.execute_query_dict(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    )
    schema: dict[str, Any] = {}
    for (name,) in sorted((t["name"],) for t in tables):
        columns = await connection.execute_query_dict(f'PRAGMA table_info("{name}")')
        indexes = []
        for index in await connection.execute_query_dict(f'PRAGMA index_list("{name}")'):
            cols = await connection.execute_query_dict(f'PRAGMA index_info("{index["name"]}")')
            indexes.append((bool(index["unique"]), tuple(c["name"] for c in cols)))
        fks = await connection.execute_query_dict(f'PRAGMA foreign_key_list("{name}")')
        schema[name] = {
            "columns": sorted(
                (c["name"], c["type"], bool(c["notnull"]), c["pk"], c["dflt_value"])
                for c in columns
            ),
            "indexes": sorted(indexes),
            "foreign_keys": sorted((f["from"], f["table"], f["to"], f["on_delete"]) for f in fks),
        }
    return schema


async def _describe_postgres(connection: BaseDBAsyncClient) -> dict[str, Any]:
    columns = await connection.execute_query_dict(
        """SELECT table_name, column_name, data_type, udt_name, is_nullable,
                  character_maximum_length, column_default
           FROM information_schema.columns WHERE table_schema = 'public'"""
    )
    indexes = await connection.execute_query_dict(
        "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
    )
    constraints = await connection.execute_query_dict(
        """SELECT conrelid::regclass::text AS table_name, contype::text AS kind,
                  pg_get_constraintdef(oid) AS definition
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace"""
    )
    schema: dict[str, Any] = {}
    for c in columns:
        table = schema.setdefault(
            c["table_name"], {"columns": [], "indexes": [], "constraints": []}
        )
        table["columns"].append(
            (
                c["column_name"],
                c["data_type"],
                c["udt_name"],
                c["is_nullable"],
                c["character_maximum_length"],
                c["column_default"],
            )
        )
    for i in indexes:
        schema[i["tablename"]]["indexes"].append(re.sub(r"INDEX \S+ ON", "INDEX ON", i["indexdef"]))
    for c in constraints:
        schema[c["table_name"]]["constraints"].append((c["kind"], c["definition"]))
    for table in schema.values():
        for key in table:
            table[key].sort()
    return schema
