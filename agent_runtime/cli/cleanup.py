"""`agent-runtime cleanup`: the retention policy, once."""

from __future__ import annotations

import click

from agent_runtime.cli._common import connected, run, settings_and_database
from agent_runtime.services.retention import RetentionPolicy, RetentionReport, run_retention


@click.command()
@click.option(
    "--idle-hours",
    type=click.FloatRange(min=0),
    default=None,
    help="Soft-delete sessions idle longer than this (default: setting, 24).",
)
@click.option(
    "--purge-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Hard-delete sessions soft-deleted longer ago than this (default: setting, 30).",
)
@click.option(
    "--expire-approvals-hours",
    type=click.FloatRange(min=0),
    default=None,
    help="Mark approvals pending longer than this as expired (default: setting, off).",
)
@click.option(
    "--keep-checkpoints",
    type=click.IntRange(min=1),
    default=None,
    help="Keep this many LangGraph checkpoints per thread, the latest (default: setting, all).",
)
@click.option(
    "--skip",
    type=click.Choice(["idle", "purge", "expire", "checkpoints"]),
    multiple=True,
    help="Skip a step (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Count what would change; change nothing.")
def cleanup(
    idle_hours: float | None = None,
    purge_days: float | None = None,
    expire_approvals_hours: float | None = None,
    keep_checkpoints: int | None = None,
    skip: tuple[str, ...] = (),
    dry_run: bool = False,
) -> None:
    """Apply the retention policy: soft-delete idle sessions, hard-delete long-deleted
    ones (with their messages, contexts, approvals and LangGraph checkpoints), expire
    stale approvals, keep only the latest LangGraph checkpoints of each thread."""
    settings, database = settings_and_database()
    policy = RetentionPolicy(
        idle_hours=None
        if "idle" in skip
        else (idle_hours if idle_hours is not None else settings.retention_idle_hours),
        purge_deleted_after_days=None
        if "purge" in skip
        else (purge_days if purge_days is not None else settings.retention_purge_days),
        expire_approvals_after_hours=None
        if "expire" in skip
        else (
            expire_approvals_hours
            if expire_approvals_hours is not None
            else settings.retention_expire_approvals_hours
        ),
        keep_checkpoints=None
        if "checkpoints" in skip
        else (
            keep_checkpoints
            if keep_checkpoints is not None
            else settings.retention_keep_checkpoints
        ),
    )

    async def go() -> RetentionReport:
        async with connected(database) as db:
            return await run_retention(db, policy, dry_run=dry_run)

    report = run(go(), database)
    will = "would be " if dry_run else ""
    click.echo(
        f"{'dry run: ' if dry_run else ''}{report.soft_deleted} idle session(s) "
        f"{will}soft-deleted, {report.hard_deleted} session(s) {will}hard-deleted, "
        f"{report.expired_approvals} approval(s) {will}expired"
        + (
            f", {report.trimmed_checkpoints} LangGraph checkpoint(s) {will}deleted"
            if policy.keep_checkpoints is not None
            else ""
        )
    )
