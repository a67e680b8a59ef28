"""`agent-runtime import-legacy`: copy a legacy agent-runtime database into this one."""

from __future__ import annotations

import sys
import time

import click

from agent_runtime.cli._common import connected, fail, run, settings_and_database
from agent_runtime.config import Settings
from agent_runtime.db.urls import DatabaseURL
from agent_runtime.services.legacy_import import (
    ImportReport,
    check_target_schema,
    open_legacy,
)
from agent_runtime.services.legacy_import import (
    import_legacy as run_import,
)

SHOWN = 50  # invalid rows / merges / skipped sessions listed one by one; the rest counted


async def _import(
    settings: Settings, database: DatabaseURL, source_url: str, dry_run: bool
) -> ImportReport:
    async with connected(database) as db:
        await check_target_schema(db)
        async with open_legacy(source_url, connect_timeout=settings.db_connect_timeout) as source:
            total = await source.count_sessions()
            click.echo(
                f"{'dry run: checking' if dry_run else 'importing'} {total} session(s) from "
                f"{source.display} (legacy variant {source.variant}) into {database.display()}",
                err=True,
            )
            with click.progressbar(
                length=total,
                label="sessions",
                file=sys.stderr,
                show_pos=True,
                update_min_steps=max(1, total // 500),  # redraw at most ~500 times
            ) as bar:
                return await run_import(db, source, dry_run=dry_run, progress=bar.update)


def _listing(title: str, lines: list[str]) -> None:
    if not lines:
        return
    click.echo(f"{title}:")
    for line in lines[:SHOWN]:
        click.echo(f"  {line}")
    if len(lines) > SHOWN:
        click.echo(f"  ... and {len(lines) - SHOWN} more")


def _summary(report: ImportReport, seconds: float) -> None:
    done = "would be imported" if report.dry_run else "imported"
    click.echo(
        f"{'dry run (nothing written)' if report.dry_run else 'import done'} in {seconds:.1f} s: "
        f"{report.source} (legacy variant {report.variant})"
    )
    click.echo(
        f"sessions:        {report.sessions_imported} {done}, "
        f"{len(report.sessions_present)} skipped (already present)"
    )
    click.echo(f"messages:        {report.messages} {done}")
    click.echo(f"agent contexts:  {report.contexts} {done}")
    click.echo(f"agent switches:  {report.switches} {done}")
    click.echo(
        f"approvals:       {report.approvals} {done}, "
        f"{report.approvals_present} skipped (call_id already present)"
    )
    click.echo(
        f"duplicate call_ids merged: {len(report.merged)} "
        f"({report.merged_rows} extra legacy row(s) folded in)"
    )
    click.echo(f"invalid rows skipped: {report.invalid_rows}")
    if report.missing_tables:
        click.echo(f"tables not in the legacy database: {', '.join(report.missing_tables)}")
    _listing("invalid rows", [str(e) for e in report.invalid])
    _listing("duplicate call_ids", [str(m) for m in report.merged])
    _listing("sessions skipped, already present", report.sessions_present)
    _listing("not imported because of an error", [f"{what}: {err}" for what, err in report.failed])


@click.command("import-legacy")
@click.option(
    "--from",
    "source_url",
    required=True,
    metavar="URL",
    help="The legacy database: sqlite:///path.db or postgresql://user@host/db.",
)
@click.option("--dry-run", is_flag=True, help="Read and validate everything; write nothing.")
def import_legacy(source_url: str, dry_run: bool = False) -> None:
    """Copy a legacy agent-runtime database into AGENT_RUNTIME__DB_URL.

    Copies every session (soft-deleted ones stay soft-deleted), its messages in the
    order the legacy service loaded them, agent contexts and switches, and tool
    approvals (duplicate call_ids merged). The legacy database is only read. Safe to
    run again: sessions and approvals already present are skipped. The target schema
    must be up to date (`agent-runtime migrate`).
    """
    settings, database = settings_and_database()
    started = time.perf_counter()
    report = run(_import(settings, database, source_url, dry_run), database)
    _summary(report, time.perf_counter() - started)
    if report.failed:
        fail(
            f"{len(report.failed)} item(s) could not be imported (listed above); "
            "run the command again to retry them"
        )
