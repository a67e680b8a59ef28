"""Real uvicorn server processes: this project's app (or another ASGI app of the
repository) on a free loopback port, ready once `/health/ready` answers 200;
`start_serve` starts the service's own command, `agent-runtime serve`, the same way.

`start_uvicorn` raises `ServerStartError`, with the server's output, if it does not
get there; the tests' fixtures (tests/fixtures/servers.py) turn that into a test
failure, the benchmarks into a failed workload.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from harness.ports import LOOPBACK, free_port
from harness.workers import worker_pids

__all__ = [
    "APP",
    "ROOT",
    "SHUTDOWN_TIMEOUT",
    "STARTUP_TIMEOUT",
    "LiveServer",
    "ServerStartError",
    "server_environment",
    "start_serve",
    "start_uvicorn",
]

ROOT = Path(__file__).resolve().parents[1]  # the repository: the servers' working directory
APP = "agent_runtime.main:app"
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0
SETTINGS_PREFIX = "AGENT_RUNTIME__"
STARTUP_LINE = "Application startup complete."  # uvicorn's, at log level info


class ServerStartError(RuntimeError):
    """The server exited, or was not ready in time; `output` is what it wrote."""

    def __init__(self, reason: str, output: str) -> None:
        super().__init__(f"{reason}\n{output}")
        self.reason, self.output = reason, output


def server_environment(
    settings: Mapping[str, str] | None = None, *, keep_settings: bool = False
) -> dict[str, str]:
    """A server's environment: this process's without its AGENT_RUNTIME__ variables
    (no API key or other setting leaks in), or with them but the API key
    (`keep_settings`, an inherited key would make every request a 401); then `settings`."""
    if keep_settings:
        environment = dict(os.environ)
        environment.pop(f"{SETTINGS_PREFIX}API_KEY", None)
    else:
        environment = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIX)}
    environment.update(settings or {})
    return environment


@dataclass
class LiveServer:
    """One `uvicorn` process; its output goes to files."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path
    own_group: bool = False  # started in its own session: its process group id is its pid
    pooled: bool = False  # its database is reached through PgBouncer
    workers: int = 1
    # The processes running the app once known (`wait_for_workers`): with one worker,
    # uvicorn's own process.
    worker_pids: tuple[int, ...] = ()

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 80)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return (
            f"--- server stdout ---\n{self.stdout.read_text(errors='replace')}"
            f"--- server stderr ---\n{self.errors()}"
        )

    def errors(self) -> str:
        """uvicorn's and the app's log (tracebacks included); access lines go to stdout."""
        return self.stderr.read_text(errors="replace")

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log (its latest tracebacks)."""
        return self.errors()[-chars:]

    def wait_for_workers(self, timeout: float = STARTUP_TIMEOUT) -> tuple[int, ...]:
        """Until each worker has logged the end of its start-up (it accepts connections
        right after; uvicorn's log level must be info); their pids, kept in `worker_pids`.
        With one worker, uvicorn runs the app in its own process: (pid,)."""
        if self.workers == 1:
            self.worker_pids = (self.pid,)
            return self.worker_pids
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = worker_pids(self.pid)
            if len(pids) == self.workers and self.errors().count(STARTUP_LINE) >= self.workers:
                self.worker_pids = pids
                return pids
            time.sleep(0.1)
        raise ServerStartError(
            f"not all {self.workers} uvicorn workers started in {timeout:.0f} s", self.output()
        )

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
        """SIGTERM (uvicorn's graceful shutdown), kill after `timeout` seconds.

        True if the process ended on SIGTERM, after completing the app's shutdown
        (uvicorn re-raises the signal once it has shut down, so the exit code is -15).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return False
        return self.process.returncode in (0, -signal.SIGTERM) and (
            "Application shutdown complete" in self.errors()
        )

    def kill(self) -> None:
        """SIGKILL, and wait for the process to end. A server started with
        `start_new_session=True` is killed as a whole process group: uvicorn's
        master and every worker at once, like `kill -9 -<pgid>`."""
        if self.own_group:
            with contextlib.suppress(ProcessLookupError):  # the group is already gone
                os.killpg(self.process.pid, signal.SIGKILL)
        elif self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def group_alive(self) -> bool:
        """Whether any process of the server's own process group is still running
        (always False for a server that shares the caller's group and has exited)."""
        if not self.own_group:
            return self.process.poll() is None
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def start_uvicorn(
    settings: Mapping[str, str],
    log_dir: Path,
    *,
    app: str = APP,
    workers: int = 1,
    args: Sequence[str] = (),
    keep_settings: bool = False,
    start_new_session: bool = False,
    timeout: float = STARTUP_TIMEOUT,
    cwd: Path = ROOT,
) -> LiveServer:
    """Start `uvicorn <app>` on a free loopback port with `settings` in its environment
    (see `server_environment`) and `args` added to its command line; return once
    `/health/ready` answers 200. Its output goes to `log_dir`.

    `start_new_session=True` runs it in its own session and process group, so that
    `LiveServer.kill()` can kill the master and its workers together.

    `cwd`: the server's working directory, this repository by default. `python -m
    uvicorn` imports the app from there first: another checkout of the project (an
    older commit's tree, with `PYTHONPATH` pointing at it in `settings`) serves its
    own code with this virtualenv's packages.
    """
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", LOOPBACK, "--port", str(port)]
    command += ["--workers", str(workers), *args]
    return _start(
        "uvicorn",
        command,
        port,
        settings,
        log_dir,
        workers=workers,
        keep_settings=keep_settings,
        start_new_session=start_new_session,
        timeout=timeout,
        cwd=cwd,
    )


def start_serve(
    settings: Mapping[str, str],
    log_dir: Path,
    *,
    workers: int = 1,
    keep_settings: bool = False,
    start_new_session: bool = False,
    timeout: float = STARTUP_TIMEOUT,
    open_files: tuple[int, int] | None = None,
) -> LiveServer:
    """`start_uvicorn`, but the service's own command, `agent-runtime serve` (its
    protocol, limits and proxy settings), on this repository's app.

    `open_files`: the (soft, hard) limits of open files the command starts with,
    as a shell's `ulimit -Sn` / `ulimit -Hn` would set them."""
    port = free_port()
    command = [sys.executable, "-m", "agent_runtime", "serve"]
    command += ["--host", LOOPBACK, "--port", str(port), "--workers", str(workers)]
    return _start(
        "serve",
        command,
        port,
        settings,
        log_dir,
        workers=workers,
        keep_settings=keep_settings,
        start_new_session=start_new_session,
        timeout=timeout,
        preexec_fn=_open_files_limits(open_files) if open_files else None,
    )


def _open_files_limits(limits: tuple[int, int]) -> Callable[[], None]:
    # Runs in the child between fork and exec: nothing to import or allocate there.
    return functools.partial(resource.setrlimit, resource.RLIMIT_NOFILE, limits)


def _start(
    name: str,
    command: list[str],
    port: int,
    settings: Mapping[str, str],
    log_dir: Path,
    *,
    workers: int,
    keep_settings: bool,
    start_new_session: bool,
    timeout: float,
    preexec_fn: Callable[[], None] | None = None,
    cwd: Path = ROOT,
) -> LiveServer:
    environment = server_environment(settings, keep_settings=keep_settings)
    stdout, stderr = log_dir / f"{name}-{port}.out", log_dir / f"{name}-{port}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=err,
            start_new_session=start_new_session,
            preexec_fn=preexec_fn,
        )
    server = LiveServer(
        process,
        f"http://{LOOPBACK}:{port}",
        stdout,
        stderr,
        own_group=start_new_session,
        pooled=environment.get(f"{SETTINGS_PREFIX}DB_POOLER") == "pgbouncer",
        workers=workers,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"{name} exited with {process.returncode}", server.output())
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    if not server.stop() and start_new_session:
        server.kill()
    raise ServerStartError(f"{name} not ready within {timeout:.0f} s", server.output())
