"""A uvicorn server's worker processes, seen from /proc (Linux).

uvicorn's workers share one listening socket and a connection stays with the worker
that accepted it; which one did is read from /proc/net/tcp and the workers' file
descriptors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["accepted_by", "worker_pids"]


def worker_pids(master_pid: int) -> tuple[int, ...]:
    """The worker processes of the uvicorn supervisor `master_pid`: its children started
    by multiprocessing's spawn (not its resource tracker, which accepts nothing)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == master_pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return tuple(sorted(found))


def _socket_owners(pids: Iterable[int]) -> dict[int, int]:
    """Socket inode -> pid, for the sockets the processes `pids` hold."""
    owners = {}
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            names = os.listdir(folder)
        except OSError:  # the process ended meanwhile
            continue
        for name in names:
            try:
                target = os.readlink(f"{folder}/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def accepted_by(server_port: int, pids: Iterable[int]) -> dict[int, int]:
    """Client port -> pid, for each established connection to `server_port` that one
    of `pids` has accepted (a connection still in the listen backlog has no owner)."""
    owners = _socket_owners(pids)
    accepted = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state != "01":  # 01: ESTABLISHED
            continue
        if int(local.rsplit(":", 1)[1], 16) == server_port and inode in owners:
            accepted[int(remote.rsplit(":", 1)[1], 16)] = owners[inode]
    return accepted
