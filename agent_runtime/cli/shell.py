"""`agent-runtime shell`: Python with top-level `await`, the models and a connection.

On a terminal it is an interactive console (like `python -m asyncio`); with piped
input or `-c CODE` it runs the code as one script and exits 1 if it raises.
"""

from __future__ import annotations

import ast
import asyncio
import code
import contextlib
import contextvars
import inspect
import sys
import traceback
import types
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import click
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.cli._common import connected, one_line_errors, settings_and_database
from agent_runtime.db.migration_files import APP_LABEL
from agent_runtime.db.urls import DatabaseURL

__all__ = ["shell"]

T = TypeVar("T")
FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _namespace(db: Any) -> dict[str, Any]:
    """`db`, `services`, the enums and constants `models` exports, and, like Django's
    shell, every model Tortoise registered for the app (a new model needs no edit here)."""
    import models
    from agent_runtime import service_api

    apps = Tortoise.apps
    registered = dict(apps.items()).get(APP_LABEL, {}) if apps is not None else {}
    exported = {name: getattr(models, name) for name in models.__all__}
    return {"__name__": "__main__", "db": db, "services": service_api, **exported, **registered}


def _print_user_traceback(exc: BaseException, filename: str) -> None:
    """The traceback from the user's code on, without this module's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) or tb is None:
        traceback.print_exception(type(exc), exc, None)
    else:
        traceback.print_exception(type(exc), exc, tb)


@asynccontextmanager
async def _connected(database: DatabaseURL) -> AsyncIterator[BaseDBAsyncClient]:
    async with connected(database) as db:
        # Tortoise connects lazily: an unreachable database should fail here, as one
        # line, rather than in the user's first query.
        await db.execute_query("SELECT 1")
        yield db


async def _script(database: DatabaseURL, source: str, filename: str) -> int:
    async with _connected(database) as db:
        namespace = _namespace(db)
        try:
            result = eval(compile(source, filename, "exec", flags=FLAGS), namespace)
            if inspect.iscoroutine(result):
                await result
        except SystemExit:
            raise
        except BaseException as exc:
            _print_user_traceback(exc, filename)
            return 1
    return 0


class _Console(code.InteractiveConsole):
    """Each statement runs to completion on `loop`, in `context` (where Tortoise was
    initialised: its connections live in a context variable)."""

    def __init__(
        self, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop, context: Any
    ) -> None:
        super().__init__(namespace, filename="<shell>")
        self.compile.compiler.flags |= FLAGS
        self.loop, self.context = loop, context

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        task = self.loop.create_task(coro, context=self.context)
        try:
            return self.loop.run_until_complete(task)
        except KeyboardInterrupt:
            task.cancel()
            with contextlib.suppress(BaseException):
                self.loop.run_until_complete(task)
            raise

    def runcode(self, code: types.CodeType) -> None:
        try:
            result = self.context.run(types.FunctionType(code, self.locals))
            if inspect.iscoroutine(result):
                self.run(result)
        except SystemExit:
            raise
        except BaseException as exc:
            _print_user_traceback(exc, self.filename)


def _interactive(database: DatabaseURL) -> None:
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    console = _Console({}, loop, contextvars.copy_context())
    try:
        with one_line_errors(database):
            db = console.run(stack.enter_async_context(_connected(database)))
        console.locals.update(_namespace(db))
        with contextlib.suppress(ImportError):  # line editing and tab completion
            import readline
            import rlcompleter

            readline.set_completer(rlcompleter.Completer(console.locals).complete)
            readline.parse_and_bind("tab: complete")
        names = ", ".join(sorted(k for k in console.locals if not k.startswith("_")))
        console.interact(
            banner=(
                f"agent-runtime shell on {database.display()} (Python "
                f"{sys.version.split()[0]}); top-level `await` works.\n"
                f"In the namespace: {names}.\n"
                "Try: await Session.all().count()"
            ),
            exitmsg="",
        )
    finally:
        console.run(stack.aclose())
        loop.close()


@click.command()
@click.option("-c", "command", metavar="CODE", help="Run CODE (like `python -c`) and exit.")
def shell(command: str | None = None) -> None:
    """Python with top-level `await`, connected to AGENT_RUNTIME__DB_URL.

    The namespace has every model Tortoise registered, by class name (Session,
    Message, AgentContext, PendingApproval, ..., and Aerich's), the enums
    (ApprovalStatus, MessageRole, ...), `services` (agent_runtime.service_api) and
    `db` (the connection).
    Interactive on a terminal; otherwise runs stdin (or CODE) as one script,
    exiting 1 with its traceback if it raises:

        echo 'print(await Session.all().count())' | agent-runtime shell
    """
    _, database = settings_and_database()
    if command is None and sys.stdin.isatty():
        _interactive(database)
        return
    source, filename = (
        (command, "<string>") if command is not None else (sys.stdin.read(), "<stdin>")
    )
    with one_line_errors(database):
        status = asyncio.run(_script(database, source, filename))
    raise SystemExit(status)
