"""Building blocks of the statements: column lists and VALUES clauses from tuples."""

from __future__ import annotations

__all__ = ["column_list", "values_for"]

# Column names that are SQL keywords, quoted as the schema quotes them.
_QUOTED = frozenset({"position", "timestamp"})


def column_list(columns: tuple[str, ...]) -> str:
    """`a, "position", b` for `("a", "position", "b")`."""
    return ", ".join(f'"{c}"' if c in _QUOTED else c for c in columns)


def values_for(columns: tuple[str, ...], **literals: str) -> str:
    """One `?` per column, except the columns given a literal SQL value."""
    unknown = set(literals) - set(columns)
    if unknown:
        raise ValueError(f"literal for columns not in the list: {sorted(unknown)}")
    return ", ".join(literals.get(c, "?") for c in columns)
