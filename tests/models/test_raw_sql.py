"""The hand-written SQL of models/queries/ agrees with the models.

Every statement is registered in `models.queries.RAW_SQL`; for each entry:

- every column it names is a column of its model's table;
- an INSERT lists every column of the table, except a generated primary key and
  the columns the entry declares left out (with the reason), and has one value
  per column;
- every column name appears in the statement text.

The "stored" SELECT of messages covers every column a caller sets, and no
statement constant in models/queries/ escapes the registry. On both backends the
models' columns are the migrated tables' columns and every statement compiles.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

import models.queries
from agent_runtime.services._sql import sql
from models import Message
from models.queries import RAW_SQL, RawStatement
from models.queries import messages as messages_sql
from models.queries._text import column_list

_STATEMENT = re.compile(r"\s*(INSERT|SELECT|UPDATE|DELETE)\b", re.IGNORECASE)
_INSERT = re.compile(r"INSERT INTO (?P<table>\w+) \((?P<columns>[^)]*)\) VALUES \((?P<values>.*)")


def top_level_values(text: str) -> list[str]:
    """The values of `VALUES (...)`, split at its top-level commas (a value may be a
    parenthesised subquery)."""
    depth, values, current = 0, [], ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    return [*values, current]


def table_columns(model: type[Model]) -> set[str]:
    """The columns of the model's table (foreign keys as their `<name>_id` column)."""
    meta = model._meta
    columns = set(meta.fields_db_projection.values())
    for name in meta.fk_fields | meta.o2o_fields:
        columns.add(getattr(meta.fields_map[name], "source_field", None) or f"{name}_id")
    return columns


def generated_pk(model: type[Model]) -> set[str]:
    pk = model._meta.pk
    return {model._meta.fields_db_projection[model._meta.pk_attr]} if pk.generated else set()


def problems(entry: RawStatement) -> list[str]:
    """What is wrong with one registry entry; [] when it agrees with its model."""
    out: list[str] = []
    table = entry.model._meta.db_table
    columns = table_columns(entry.model)
    text = entry.text
    verb = _STATEMENT.match(text)
    if verb is None or verb.group(1).lower() != entry.kind:
        out.append(f"{entry.name}: not an {entry.kind.upper()} statement")
    if not re.search(rf"\b{table}\b", text):
        out.append(f"{entry.name}: table {table} not in the statement")
    for column in (*entry.columns, *entry.keys):
        if column not in columns:
            out.append(f"{entry.name}: {column!r} is not a column of {table}")
        if not re.search(rf"\b{re.escape(column)}\b", text):
            out.append(f"{entry.name}: column {column!r} not in the statement")
    if len(set(entry.columns)) != len(entry.columns):
        out.append(f"{entry.name}: a column is listed twice")
    if entry.left_out and not entry.left_out_why.strip():
        out.append(f"{entry.name}: columns left out without a reason")
    for column in sorted(entry.left_out & set(entry.columns)):
        out.append(f"{entry.name}: {column!r} is declared left out but is written")
    for column in sorted(entry.left_out - columns):
        out.append(f"{entry.name}: left-out {column!r} is not a column of {table}")
    if entry.kind == "insert":
        expected = columns - generated_pk(entry.model) - entry.left_out
        for column in sorted(expected - set(entry.columns)):
            out.append(f"{entry.name}: INSERT leaves out column {column!r} of {table}")
        match = _INSERT.search(text)
        if match is None:
            out.append(f"{entry.name}: no INSERT INTO {table} (...) VALUES (...)")
        else:
            if match["table"] != table:
                out.append(f"{entry.name}: inserts into {match['table']}, not {table}")
            if match["columns"] != column_list(entry.columns):
                out.append(f"{entry.name}: column list is not built from its column tuple")
            if len(top_level_values(match["values"])) != len(entry.columns):
                out.append(f"{entry.name}: not one value per column")
    return out


def unregistered(modules: list[ModuleType]) -> list[str]:
    """Statement constants of `modules` that are not in the registry."""
    registered = {entry.text for entry in RAW_SQL}
    return [
        f"{module.__name__}.{name}"
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, str) and _STATEMENT.match(value) and value not in registered
    ]


def query_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"models.queries.{info.name}")
        for info in pkgutil.iter_modules(models.queries.__path__)
    ]


# ---------------------------------------------------------------------------
# The registry


def test_every_registered_statement_agrees_with_its_model() -> None:
    assert [p for entry in RAW_SQL for p in problems(entry)] == []


def test_every_statement_constant_is_registered() -> None:
    modules = query_modules()
    assert {m.__name__.rpartition(".")[2] for m in modules} >= {
        "sessions",
        "messages",
        "agent_contexts",
        "approvals",
    }
    assert unregistered(modules) == []


def test_registry_names_are_the_constants() -> None:
    names = [entry.name for entry in RAW_SQL]
    assert len(names) == len(set(names))
    for entry in RAW_SQL:
        module, _, constant = entry.name.partition(".")
        assert getattr(importlib.import_module(f"models.queries.{module}"), constant) == entry.text


def test_the_stored_select_covers_every_column_a_caller_sets() -> None:
    from agent_runtime.services.messages import STORED_KEYS

    caller_set = table_columns(Message) - {"id", "session_id", "position"}
    (stored,) = [e for e in RAW_SQL if e.text == messages_sql.SELECT_STORED]
    assert set(stored.columns) == caller_set
    assert set(STORED_KEYS) == caller_set  # what a save compares is what is read back


def test_models_queries_do_not_import_agent_runtime() -> None:
    for module in [models.queries, *query_modules()]:
        source = Path(module.__file__ or "").read_text()
        assert not re.search(r"^\s*(from|import)\s+agent_runtime\b", source, re.MULTILINE)


# ---------------------------------------------------------------------------
# The checks can fail


def fake(**changes: object) -> RawStatement:
    base = {
        "name": "fake.INSERT",
        "model": Message,
        "kind": "insert",
        "columns": messages_sql.INSERT_COLUMNS,
        "text": messages_sql.INSERT,
    }
    return RawStatement(**{**base, **changes})  # type: ignore[arg-type]


def test_a_good_entry_has_no_problems() -> None:
    assert problems(fake()) == []


def test_an_insert_missing_a_column_is_reported() -> None:
    columns = tuple(c for c in messages_sql.INSERT_COLUMNS if c != "metadata")
    text = f"INSERT INTO messages ({column_list(columns)}) VALUES ({', '.join('?' * len(columns))})"

    assert problems(fake(columns=columns, text=text)) == [
        "fake.INSERT: INSERT leaves out column 'metadata' of messages"
    ]
    # Declared, with a reason, it is accepted; declared without one, it is not.
    assert problems(fake(columns=columns, text=text, left_out={"metadata"}, left_out_why="x")) == []
    assert problems(fake(columns=columns, text=text, left_out=frozenset({"metadata"}))) == [
        "fake.INSERT: columns left out without a reason"
    ]


def test_an_unknown_column_and_a_column_missing_from_the_text_are_reported() -> None:
    select = "SELECT role, colour FROM messages WHERE session_id = ?"
    entry = fake(
        name="fake.SELECT", kind="select", columns=("role", "colour", "content"), text=select
    )

    assert problems(entry) == [
        "fake.SELECT: 'colour' is not a column of messages",
        "fake.SELECT: column 'content' not in the statement",
    ]


def test_an_insert_not_built_from_its_tuple_is_reported() -> None:
    text = messages_sql.INSERT.replace("VALUES (?, ", "VALUES (")
    assert problems(fake(text=text)) == ["fake.INSERT: not one value per column"]


def test_an_unregistered_statement_is_reported() -> None:
    stray = ModuleType("models.queries.stray")
    stray.SELECT_ALL = "SELECT * FROM messages"  # type: ignore[attr-defined]
    stray.NOTE = "not a statement"  # type: ignore[attr-defined]

    assert unregistered([stray]) == ["models.queries.stray.SELECT_ALL"]


# ---------------------------------------------------------------------------
# Against the migrated database, on both backends


async def _columns(db: BaseDBAsyncClient, table: str) -> set[str]:
    if db.capabilities.dialect == "postgres":
        _, rows = await db.execute_query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1",
            [table],
        )
        return {row[0] for row in rows}
    _, rows = await db.execute_query(f"PRAGMA table_info({table})")
    return {row[1] for row in rows}


async def test_the_models_columns_are_the_tables_columns(db: BaseDBAsyncClient) -> None:
    for model in {entry.model for entry in RAW_SQL}:
        assert table_columns(model) == await _columns(db, model._meta.db_table), model


async def test_every_statement_compiles_against_the_migrated_schema(db: BaseDBAsyncClient) -> None:
    for entry in RAW_SQL:
        text = entry.text.format(marks="?") if "{marks}" in entry.text else entry.text
        if db.capabilities.dialect not in entry.dialects:
            continue  # e.g. PostgreSQL's row lock, or its ordered, notifying event insert
        params = [None] * text.count("?")
        await db.execute_query(sql(db, f"EXPLAIN {text}"), params)
