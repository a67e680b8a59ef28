"""A private PostgreSQL cluster for one test: initdb into a temp dir, pg_ctl on a free port.

For tests that must stop and start the database server (outages), which the
machine's shared server must never be subjected to. The cluster listens on
127.0.0.1 only, keeps its Unix socket in its own directory, and is always
stopped and deleted when the fixture ends, whatever the test did.

PostgreSQL refuses to run as root: when the tests run as root, every server-side
command (initdb, pg_ctl) runs as the `postgres` OS user via `runuser`, on a
directory owned by that user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest

from harness.ports import free_port
from tests.fixtures.backends import BACKENDS, REQUIRE_PG, aerich_ok

__all__ = ["PrivatePostgres", "find_pg_bin", "migrated_private_postgres", "private_postgres"]

START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
STOP_TIMEOUT = 30


def find_pg_bin() -> Path | None:
    """The folder with initdb and pg_ctl: $PG_BIN, then PATH, then Debian's layout."""
    candidates: list[str] = []
    if os.environ.get("PG_BIN"):
        candidates.append(os.environ["PG_BIN"])
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))  # through symlinks
    candidates += sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True)  # newest first
    for folder in candidates:
        path = Path(folder)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


class PrivatePostgres:
    """One throw-away cluster. `url(database)` gives a URL the app and aerich accept."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="agent-runtime-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no `postgres` OS user") from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    # -- server-side commands, as the postgres user -------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_user, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )

    def _check(self, what: str, result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode != 0:
            raise RuntimeError(
                f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{self.server_log()}"
            )

    def initdb(self) -> None:
        result = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        self._check("initdb", result)
        # Listen on loopback TCP only, socket in our own folder (never /var/run/postgresql).
        settings = (
            f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.root}'\nmax_connections = 50\n"
            "shared_buffers = 16MB\nfsync = on\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def start(self) -> None:
        result = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(START_TIMEOUT),
            "start",
            timeout=START_TIMEOUT + 10,
        )
        self._check("pg_ctl start", result)

    def stop(self, mode: str = "fast") -> None:
        result = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            mode,
            "-w",
            "-t",
            str(STOP_TIMEOUT),
            "stop",
            timeout=STOP_TIMEOUT + 10,
        )
        self._check("pg_ctl stop", result)

    def is_running(self) -> bool:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status").returncode == 0

    def create_database(self, name: str) -> None:
        address = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        result = subprocess.run(
            [str(self.bin / "createdb"), *address, name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        self._check(f"createdb {name}", result)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def server_log(self) -> str:
        try:
            return f"--- private PostgreSQL log ---\n{self.log.read_text(errors='replace')}"
        except OSError:
            return "(no PostgreSQL log)"

    def destroy(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and delete the cluster."""
        if self.data.exists():
            for mode in ("fast", "immediate"):
                if not self.is_running():
                    break
                with contextlib.suppress(Exception):
                    self.stop(mode)
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():
                with contextlib.suppress(Exception):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                    time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)


def _unavailable(reason: str) -> None:
    # On CI (AGENT_RUNTIME_TEST_REQUIRE_PG=1) PostgreSQL tests must run: fail, never skip.
    if REQUIRE_PG:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster; stopped and deleted on exit (also on failure)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl) found; set PG_BIN")
        raise AssertionError("unreachable")
    try:
        cluster = PrivatePostgres(bin_dir)
    except (RuntimeError, OSError) as exc:
        _unavailable(f"cannot prepare a private PostgreSQL cluster: {exc}")
        raise AssertionError("unreachable") from exc
    atexit.register(cluster.destroy)  # in case the process ends before the teardown runs
    try:
        try:
            cluster.initdb()
            cluster.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"cannot run a private PostgreSQL cluster with {bin_dir}: {exc}")
        yield cluster
    finally:
        cluster.destroy()
        atexit.unregister(cluster.destroy)


@contextlib.contextmanager
def migrated_private_postgres(database: str) -> Iterator[PrivatePostgres]:
    """A private cluster holding `database`, migrated by `aerich upgrade`; always deleted."""
    if "postgres" not in BACKENDS:
        pytest.skip("PostgreSQL is not among AGENT_RUNTIME_TEST_BACKENDS")
    with private_postgres() as pg:
        pg.create_database(database)
        aerich_ok(pg.url(database), "upgrade")
        yield pg
