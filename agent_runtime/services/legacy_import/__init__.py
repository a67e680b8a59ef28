"""Import a legacy agent-runtime database (the SQLAlchemy schema) into this service's.

`open_legacy` opens the legacy database read-only; `import_legacy` copies it and
returns an `ImportReport`. The submodules:

* `sources` — reading the legacy database: `LegacySource` (SQLite or PostgreSQL,
  one read-only snapshot), `open_legacy`, the legacy tables and columns read, and
  the schema check that detects variant A or B;
* `rows` — validation of legacy rows into the values to store, the legacy limits,
  roles and statuses, and the merge rule for approvals sharing a `call_id`;
* `importer` — writing: `import_legacy` (what is copied, per session in one
  transaction; idempotence; `dry_run`), `check_target_schema`, the INSERTs;
* `report` — `ImportReport`, `InvalidRow`, `MergedApproval`: what an import did.
"""

from __future__ import annotations

from agent_runtime.errors import LegacyImportError
from agent_runtime.services.legacy_import.importer import check_target_schema, import_legacy
from agent_runtime.services.legacy_import.report import ImportReport, InvalidRow, MergedApproval
from agent_runtime.services.legacy_import.sources import LegacySource, open_legacy

__all__ = [
    "ImportReport",
    "InvalidRow",
    "LegacyImportError",
    "LegacySource",
    "MergedApproval",
    "check_target_schema",
    "import_legacy",
    "open_legacy",
]
