"""The `agent-runtime` command (also `python -m agent_runtime`)."""

from __future__ import annotations

import click

from agent_runtime import __version__

__all__ = ["cli", "main"]


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "-V", "--version", prog_name="agent-runtime")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Session, agent-context and tool-approval storage for agent runtimes.

    Settings come from AGENT_RUNTIME__* environment variables and .env; see README.
    Without a command, `serve`.
    """
    if ctx.invoked_subcommand is None:
        from agent_runtime.cli.serve import serve

        ctx.invoke(serve)


def _register() -> None:
    from agent_runtime.cli.check import check
    from agent_runtime.cli.cleanup import cleanup
    from agent_runtime.cli.key import key
    from agent_runtime.cli.makemigrations import makemigrations
    from agent_runtime.cli.migrate import migrate
    from agent_runtime.cli.reviewer import reviewer
    from agent_runtime.cli.serve import serve
    from agent_runtime.cli.shell import shell
    from agent_runtime.cli.showmigrations import showmigrations

    for command in (
        serve,
        migrate,
        makemigrations,
        showmigrations,
        shell,
        cleanup,
        check,
        reviewer,
        key,
    ):
        cli.add_command(command)
    try:
        from agent_runtime.cli.import_legacy import import_legacy
    except ImportError:  # pragma: no cover - only while it is being written
        return
    cli.add_command(import_legacy)


_register()


def main() -> None:
    cli(prog_name="agent-runtime")
