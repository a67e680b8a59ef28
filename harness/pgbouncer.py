"""PgBouncer in transaction mode in front of a PostgreSQL server: the one configuration.

Used by the test suite when `AGENT_RUNTIME_TEST_PGBOUNCER_URL` is not set, by
`python -m benchmarks --workloads pooler,writers` (`pgbouncer_for_run`), and by
`.ci/run`, which starts one on a fixed port before the virtualenv exists:

    python3 -m harness.pgbouncer start DIR --port 6439 --pg-host 127.0.0.1 --pg-port 5432

(the configuration, log and pid file in DIR; daemonized; stop it with the pid in
DIR/pgbouncer.pid). Only the standard library.

The configuration is the one the documentation recommends: any database name is
forwarded to the server (`* = host=... port=...`), trust authentication against
an auth file naming `postgres`, `pool_mode = transaction`. PgBouncer refuses to
run as root: as root it is started with `-u postgres` on files that user owns.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from harness.ports import LOOPBACK, free_port

__all__ = [
    "CONFIG",
    "PREPARED_STATEMENT",
    "PrivatePgBouncer",
    "RunPgBouncer",
    "find_pgbouncer",
    "pgbouncer_for_run",
    "prepared_statement_lines",
    "user_arguments",
    "with_database",
    "write_config",
]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
RUN_AS = "postgres"  # as root: PgBouncer's user, and the one name in the auth file

# What asyncpg reports when a named prepared statement meets the wrong server
# connection behind a transaction pooler ('prepared statement "__asyncpg_stmt_1__"
# does not exist' / 'already exists'): must never appear behind PgBouncer.
PREPARED_STATEMENT = re.compile(r"prepared statement", re.IGNORECASE)

CONFIG = """\
[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = {listen_addr}
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
server_idle_timeout = {server_idle_timeout}
admin_users = postgres
stats_users = postgres
log_connections = 0
log_disconnections = 0
logfile = {logfile}
pidfile = {pidfile}
"""


def find_pgbouncer() -> Path | None:
    """The pgbouncer binary: on PATH, else Debian's /usr/sbin/pgbouncer."""
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def user_arguments() -> list[str]:
    """PgBouncer's arguments to drop root (`-u postgres`), when running as root."""
    return ["-u", RUN_AS] if os.geteuid() == 0 else []


def write_config(
    directory: Path,
    *,
    port: int,
    upstream_host: str,
    upstream_port: int,
    server_idle_timeout: int = 30,
) -> Path:
    """pgbouncer.ini and its auth file in `directory` (its log and pid file go there
    too); as root, all owned by the `postgres` OS user. The configuration's path."""
    auth_file = directory / "userlist.txt"
    config = directory / "pgbouncer.ini"
    auth_file.write_text(f'"{RUN_AS}" ""\n')
    config.write_text(
        CONFIG.format(
            upstream_host=upstream_host,
            upstream_port=upstream_port,
            listen_addr=LOOPBACK,
            port=port,
            auth_file=auth_file,
            server_idle_timeout=server_idle_timeout,
            logfile=directory / "pgbouncer.log",
            pidfile=directory / "pgbouncer.pid",
        )
    )
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(RUN_AS)
        except KeyError:
            raise RuntimeError(f"running as root and there is no `{RUN_AS}` OS user") from None
        for path in (directory, auth_file, config):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return config


def _log_text(directory: Path) -> str:
    try:
        return (directory / "pgbouncer.log").read_text(errors="replace")
    except OSError:
        return "(no pgbouncer log)"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_listening(port: int, exited: Callable[[], int | None]) -> str | None:
    """None once something accepts connections on `port`, else why not."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        returncode = exited()
        if returncode is not None:
            return f"pgbouncer exited with {returncode}"
        if _listening(port):
            return None
        time.sleep(0.05)
    return f"pgbouncer not listening within {START_TIMEOUT:.0f} s"


class PrivatePgBouncer:
    """One PgBouncer process on a free loopback port, its files in a temp dir.

    `upstream_url`: any URL of the PostgreSQL server (only its host and port are
    used). `url(database)` is that database through the pooler.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        binary: Path | None = None,
        port: int | None = None,
        server_idle_timeout: int = 30,
    ) -> None:
        found = binary or find_pgbouncer()
        if found is None:
            raise RuntimeError("no pgbouncer binary (install the `pgbouncer` package)")
        self.binary = found
        upstream = urlsplit(upstream_url.replace("postgresql+asyncpg://", "postgresql://"))
        self.upstream_host = upstream.hostname or LOOPBACK
        self.upstream_port = upstream.port or 5432
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="agent-runtime-pgbouncer-"))
        self.log = self.root / "pgbouncer.log"
        try:
            self.config = write_config(
                self.root,
                port=self.port,
                upstream_host=self.upstream_host,
                upstream_port=self.upstream_port,
                server_idle_timeout=server_idle_timeout,
            )
        except RuntimeError:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> PrivatePgBouncer:
        """Start it and wait until it accepts connections; raise RuntimeError if not."""
        process = self.process = subprocess.Popen(
            [str(self.binary), *user_arguments(), str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # the same lines go to the log file
        )
        atexit.register(self.stop)  # if the process ends before its owner stops it
        problem = _wait_listening(self.port, process.poll)
        if problem is None:
            return self
        text = self.log_text()
        self.stop()
        raise RuntimeError(f"{problem}\n{text}")

    def log_text(self) -> str:
        return _log_text(self.root)

    def stop(self) -> None:
        """SIGTERM (immediate shutdown), SIGKILL if it lingers; delete its files."""
        atexit.unregister(self.stop)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """A PostgreSQL URL (`postgresql://` or `postgresql+asyncpg://`) naming the
    database `name` instead, spelled `postgresql://`."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    return urlunsplit(("postgresql", parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass(frozen=True)
class RunPgBouncer:
    """The PgBouncer a benchmark run goes through: the one given (its URL, any
    database name in it), or a private one started for the run."""

    given: str | None
    private: PrivatePgBouncer | None

    def url(self, database: str) -> str:
        """`database` through the pooler."""
        if self.private is not None:
            return self.private.url(database)
        assert self.given is not None
        return with_database(self.given, database)

    @property
    def pid(self) -> int | None:
        """The private instance's process (for its CPU time), else None."""
        process = self.private.process if self.private is not None else None
        return process.pid if process is not None else None

    @property
    def description(self) -> str:
        if self.private is not None:
            return "private instance: pool_mode=transaction, default_pool_size=20"
        host = urlsplit(self.given or "").netloc.rpartition("@")[2]
        return f"{host} (its own settings)"

    async def stop(self) -> None:
        """Stop the private instance, if any (the given one is not ours)."""
        if self.private is not None:
            await asyncio.to_thread(self.private.stop)


async def pgbouncer_for_run(
    upstream_url: str, given: str | None, log: Callable[[str], None], who: str
) -> RunPgBouncer | str:
    """The PgBouncer for a benchmark workload (`who`, for the log): `given` (a
    `--pgbouncer-url` in front of the server of `upstream_url`), else a private one
    started in front of `upstream_url`'s server; or why there is none."""
    if given:
        return RunPgBouncer(given, None)
    if find_pgbouncer() is None:
        return "no pgbouncer binary (install the pgbouncer package, or pass --pgbouncer-url)"
    try:
        bouncer = await asyncio.to_thread(PrivatePgBouncer(upstream_url).start)
    except (RuntimeError, OSError) as exc:
        return f"cannot start a private pgbouncer: {exc}"
    log(f"{who}: private pgbouncer on {LOOPBACK}:{bouncer.port}")
    return RunPgBouncer(None, bouncer)


def prepared_statement_lines(text: str) -> list[str]:
    """The lines of a log that mention a prepared statement."""
    return [line for line in text.splitlines() if PREPARED_STATEMENT.search(line)]


def _start_daemon(directory: Path, port: int, pg_host: str, pg_port: int) -> int:
    """`start`: the configuration in `directory`, PgBouncer daemonized, listening."""
    binary = find_pgbouncer()
    if binary is None:
        print("no pgbouncer binary (install the `pgbouncer` package)", file=sys.stderr)
        return 1
    if _listening(port):
        print(f"port {port} is taken: something listens on {LOOPBACK}:{port}", file=sys.stderr)
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    try:
        config = write_config(directory, port=port, upstream_host=pg_host, upstream_port=pg_port)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    started = subprocess.run(
        [str(binary), "-d", *user_arguments(), str(config)], check=False, capture_output=True
    )
    problem = (
        f"pgbouncer -d exited with {started.returncode}: {started.stderr.decode(errors='replace')}"
        if started.returncode != 0
        else _wait_listening(port, lambda: None)
    )
    if problem is not None:
        print(f"{problem}\n{_log_text(directory)}", file=sys.stderr)
        return 1
    print(f"pgbouncer (transaction mode) on {LOOPBACK}:{port}, pid in {directory}/pgbouncer.pid")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.pgbouncer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a daemonized PgBouncer, files in DIR")
    start.add_argument("directory", type=Path, metavar="DIR")
    start.add_argument("--port", type=int, required=True)
    start.add_argument("--pg-host", default=LOOPBACK)
    start.add_argument("--pg-port", type=int, default=5432)
    options = parser.parse_args(argv)
    return _start_daemon(options.directory, options.port, options.pg_host, options.pg_port)


if __name__ == "__main__":
    sys.exit(main())
