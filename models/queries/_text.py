"""Building blocks of the statements: column lists and VALUES clauses from tuples."""

from __future__ import annotations

__all__ = ["column_list", "quoted", "values_for"]

# Column names that are SQL keywords, quoted as the schema quotes them.
_QUOTED = frozenset({"position", "timestamp"})


def quoted(column: str) -> str:
    return f'"{column}"' if column in _QUOTED else column


def column_list(columns: tuple[str, ...], table: str | None = None) -> str:
    """`a, "position", b` for `("a", "position", "b")`; each prefixed by `table.`
    when given (a statement over two tables)."""
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + quoted(c) for c in columns)


def values_for(columns: tuple[str, ...], **literals: str) -> str:
    """One `?` per column, except the columns given a literal SQL value."""
    unknown = set(literals) - set(columns)
    if unknown:
        raise ValueError(f"literal for columns not in the list: {sorted(unknown)}")
    return ", ".join(literals.get(c, "?") for c in columns)
