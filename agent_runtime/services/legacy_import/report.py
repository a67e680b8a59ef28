"""What an import did: the report `import_legacy` returns, and its progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ImportReport", "InvalidRow", "MergedApproval", "ProgressCallback"]


@dataclass(frozen=True)
class InvalidRow:
    """Legacy rows skipped because this service cannot store them."""

    table: str
    row: str  # which row: its legacy id, or a description of a group of rows
    reason: str
    rows: int = 1  # how many legacy rows this entry stands for

    def __str__(self) -> str:
        return f"{self.table} {self.row}: {self.reason}"


@dataclass(frozen=True)
class MergedApproval:
    """Several legacy rows of one call_id, imported as one approval."""

    call_id: str
    rows: int
    status: str
    note: str = ""  # what differed between the rows, if anything

    def __str__(self) -> str:
        text = f"call_id {self.call_id!r}: {self.rows} rows merged into one ({self.status})"
        return f"{text}; {self.note}" if self.note else text


@dataclass
class ImportReport:
    """What an import did (or, with `dry_run`, would do)."""

    source: str
    variant: str
    dry_run: bool
    sessions_seen: int = 0
    sessions_imported: int = 0
    sessions_present: list[str] = field(default_factory=list)  # skipped: already in target
    messages: int = 0
    contexts: int = 0
    switches: int = 0
    approvals: int = 0
    approvals_present: int = 0  # skipped: call_id already in target
    merged: list[MergedApproval] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    # (session id, or a batch of approvals; the error): not written, retried by a re-run
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)

    @property
    def invalid_rows(self) -> int:
        return sum(entry.rows for entry in self.invalid)

    @property
    def merged_rows(self) -> int:
        """Extra legacy rows folded into merged approvals."""
        return sum(m.rows - 1 for m in self.merged)


ProgressCallback = Callable[[int], Any]  # called with the number of sessions just handled
