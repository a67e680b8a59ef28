"""Writers in parallel (issue 14/15, PostgreSQL only): do writers on distinct sessions
wait for each other?

Until the event log moved to `pending_events`, every PostgreSQL write recorded its
event under one advisory lock held to commit (plus a NOTIFY in the same transaction):
all writers committed one at a time, and an open transaction that had written made
every other writer wait for it. This workload measures both, on this checkout
("after") and, with `--before REF`, on an older commit's tree ("before": extracted
with `git archive`, served from its own directory with PYTHONPATH pointing at it,
with this virtualenv's packages, on its own freshly migrated database), alternating
between the two in the same run.

1. Writers on distinct sessions, over REST through real uvicorn: `writers_clients`
   keep-alive clients, each writing its own session for `writers_seconds`: per 4
   writes, 3 appends of one message and 1 save of the whole list (a new list of new
   dicts, encoded per request), then an approval created and decided; a writer moves
   to a new session of its own at `MAX_MESSAGES`. Every request is a write that
   records one event. Setups (`Config.writers_setups`): one instance of 1, 2 and 4
   workers directly, and two instances of 2 workers behind one PgBouncer
   (transaction mode; `AGENT_RUNTIME__DB_POOLER=pgbouncer`, LISTEN direct). Per
   (setup, round) each tree's server is started, driven and stopped in turn (both at
   once would hold up to 2 x 44 server connections), the order alternating per
   round. Reported: requests per second, p50 and p99 of all requests (median over
   the rounds), per kind too; CPU of the servers and the load generator; what the
   database's backends were doing (pg_stat_activity sampled every 100 ms: how many
   active, how many waiting on a lock).
2. The open-transaction probe, in-process through the service API
   (`benchmarks/opentx_probe.py`, run in a fresh interpreter per tree): one task's
   transaction saves session A and stays open `probe_hold_seconds`; meanwhile other
   tasks save B, append to C, create an approval on D and decide a call on E; each
   one's latency, and the same four at once with nothing open (baseline).

Checks (a failure is a SANITY problem): every answer's status and body; afterwards
each writer's session holds the messages it wrote, and the log holds one event per
acknowledged write (events + pending ones, in one statement).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from benchmarks.backends import REPO_ROOT
from benchmarks.config import Config
from benchmarks.data import conversation, message
from benchmarks.workloads.http import Checks, CpuWindow, finish_within
from harness.latency import latency_ms
from harness.loadclient import Connection, Unanswered
from harness.pgbouncer import (
    RunPgBouncer,
    pgbouncer_for_run,
    prepared_statement_lines,
    with_database,
)
from harness.ports import LOOPBACK
from harness.servers import LiveServer, ServerStartError, server_environment, start_uvicorn

__all__ = ["KINDS", "BeforeTree", "prepare_before", "run"]

_APP = "agent_runtime.main:app"
_PROBE = Path(__file__).resolve().parents[1] / "opentx_probe.py"
KINDS = ("append", "save", "approval create", "approval decide")
BASE = 10  # messages of a new session (its first save)
WRITES_PER_CYCLE = 4  # 3 appends + 1 whole-list save, then one approval created + decided
MAX_MESSAGES = 100  # then the writer moves to a new session of its own
SAMPLE_S = 0.1  # pg_stat_activity sampling period
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0
_TIMEOUT = 60.0  # one request; a hang is a failure, not a slow sample
_PROBE_TIMEOUT = 120.0


# ---------------------------------------------------------------------------- trees


@dataclass(frozen=True)
class BeforeTree:
    """An older commit's tree to measure "before" on."""

    root: Path
    label: str  # the commit (or the directory given)
    temporary: bool  # extracted by us: deleted at the end


def prepare_before(spec: str) -> BeforeTree:
    """`spec`: a directory holding a checkout or an extracted tree of the project, or a
    git ref of this repository, extracted with `git archive` into a temp directory
    (git's state is only read)."""
    path = Path(spec)
    if path.is_dir():
        if not (path / "agent_runtime").is_dir():
            raise ValueError(f"--before {spec}: no agent_runtime package in that directory")
        return BeforeTree(path.resolve(), str(path.resolve()), temporary=False)

    def git(*args: str) -> bytes:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True)
        if done.returncode != 0:
            raise ValueError(f"--before {spec}: git {args[0]}: {done.stderr.decode().strip()}")
        return done.stdout

    commit = git("rev-parse", "--verify", f"{spec}^{{commit}}").decode().strip()
    archive = git("archive", "--format=tar", commit)
    root = Path(tempfile.mkdtemp(prefix="bench-before-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return BeforeTree(root, f"git {commit[:7]}", temporary=True)


@dataclass(frozen=True)
class _Tree:
    name: str  # "after" or "before"
    root: Path  # its processes' working directory
    label: str

    @property
    def env(self) -> dict[str, str]:
        # Another tree: its code first on sys.path (the working directory too: `-m`).
        return {} if self.root == REPO_ROOT else {"PYTHONPATH": str(self.root)}


def _order(trees: list[_Tree], round_: int) -> list[_Tree]:
    """Alternate which tree goes first: A B, B A, A B ..."""
    return trees if round_ % 2 == 0 else trees[::-1]


# ------------------------------------------------------------------------- databases


async def _migrate(tree: _Tree, url: str) -> None:
    """`agent-runtime migrate` of that tree, on `url`."""
    env = server_environment({"AGENT_RUNTIME__DB_URL": url, **tree.env})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_runtime",
        "migrate",
        cwd=tree.root,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{tree.name}: migrate failed:\n{output.decode(errors='replace')}")


# --------------------------------------------------------------------------- servers


@contextlib.asynccontextmanager
async def _serve(
    tree: _Tree, env: dict[str, str], workers: int, log_dir: Path
) -> AsyncIterator[LiveServer]:
    """`uvicorn agent_runtime.main:app` of `tree` (the flags of the other HTTP
    workloads), ready once every worker has started."""
    level = "warning" if workers == 1 else "info"
    try:
        server = await asyncio.to_thread(
            start_uvicorn,
            {**env, **tree.env},
            log_dir,
            app=_APP,
            workers=workers,
            args=["--log-level", level, "--no-access-log"],
            keep_settings=True,
            timeout=_START_TIMEOUT,
            cwd=tree.root,
        )
    except ServerStartError as exc:
        raise RuntimeError(f"writers ({tree.name}): {exc.reason}\n{exc.output[-2000:]}") from exc
    try:
        await asyncio.to_thread(server.wait_for_workers, _START_TIMEOUT)
        yield server
    finally:
        await asyncio.to_thread(server.stop, _STOP_TIMEOUT)


# --------------------------------------------------------------------------- writers


class _Writer:
    """One agent: its sessions, its keep-alive connection, its latencies."""

    def __init__(self, conn: Connection, tag: str, checks: Checks) -> None:
        self.conn, self.tag, self.checks = conn, tag, checks
        self.session_no = 0
        self.count = 0  # messages its current session holds
        self.writes = 0
        self.calls = 0
        self.acknowledged = 0  # answered writes: one event each
        self.latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.errors: list[str] = []

    @property
    def session_id(self) -> str:
        return f"{self.tag}-s{self.session_no}"

    async def _call(
        self, kind: str | None, method: str, path: str, body: Any, expect: int
    ) -> Any | None:
        """The decoded answer, its latency recorded under `kind` (None: untimed);
        None, an error recorded, unless `expect` with JSON."""
        began = time.perf_counter()
        try:
            response = await asyncio.wait_for(self.conn.request(method, path, body), _TIMEOUT)
        except (Unanswered, TimeoutError) as exc:
            self.errors.append(f"{method} {path}: {exc!r}"[:200])
            return None
        if kind is not None:
            self.latencies[kind].append(time.perf_counter() - began)
        if response.status != expect:
            self.errors.append(f"{method} {path} -> {response.status}: {response.body[:160]!r}")
            return None
        try:
            answer = json.loads(response.body)
        except ValueError:
            self.errors.append(f"{method} {path}: not JSON: {response.body[:100]!r}")
            return None
        self.acknowledged += 1
        return answer

    async def _save(self, kind: str | None, n: int) -> bool:
        # The whole list: a new list of new dicts, encoded for this request.
        answer = await self._call(
            kind, "POST", f"/sessions/{self.session_id}", conversation(n), 200
        )
        if answer is None:
            return False
        if answer != {"status": "saved"}:
            self.checks.fail(f"{self.session_id}: save answered {answer!r:.160}")
        self.count = n
        return True

    async def seed(self) -> bool:
        return await self._save(None, BASE)

    async def wake(self) -> None:
        """Right before the clock starts: a keep-alive connection idle for 5 s (while
        the last writers seed) is closed by uvicorn; reopen it."""
        for _ in range(2):
            try:
                await self.conn.request("GET", "/health/live")
                return
            except Unanswered:
                continue

    async def step(self) -> None:
        """One write; after every `WRITES_PER_CYCLE`th, an approval created + decided."""
        if self.count >= MAX_MESSAGES:
            self.session_no += 1
            ok = await self._save("save", BASE)
        elif self.writes % WRITES_PER_CYCLE == WRITES_PER_CYCLE - 1:
            ok = await self._save("save", self.count + 1)
        else:
            path = f"/sessions/{self.session_id}/messages"
            answer = await self._call("append", "POST", path, [message(self.count)], 200)
            ok = answer is not None
            if ok:
                self.count += 1
        if not ok:
            return
        self.writes += 1
        if self.writes % WRITES_PER_CYCLE:
            return
        call_id = f"{self.session_id}-call{self.calls}"
        self.calls += 1
        body = {
            "session_id": self.session_id,
            "call_id": call_id,
            "tool_name": "delete_file",
            "arguments": {"path": f"/tmp/{call_id}.csv", "force": False},
        }
        created = await self._call("approval create", "POST", "/approvals", body, 201)
        if created is None:
            return
        if created.get("status") != "pending":
            self.checks.fail(f"{call_id}: created as {created.get('status')!r}")
        decision = {"status": "approved", "decided_by": "bench-reviewer"}
        path = f"/approvals/{call_id}/decision"
        decided = await self._call("approval decide", "POST", path, decision, 200)
        if decided is not None and decided.get("status") != "approved":
            self.checks.fail(f"{call_id}: decided as {decided.get('status')!r}")

    async def check_stored(self) -> None:
        """Its current session holds what it wrote."""
        response = await self.conn.request("GET", f"/sessions/{self.session_id}")
        got = json.loads(response.body).get("messages") if response.status == 200 else None
        if got != conversation(self.count):
            n = len(got) if isinstance(got, list) else got
            self.checks.fail(f"{self.session_id}: read back {n} messages, {self.count} written")


async def _events_logged(db: asyncpg.Connection, tag: str) -> int:
    """Events of the run's sessions: in the log, or (after) waiting to enter it; one
    statement, so one snapshot (the move from pending to the log is one statement)."""
    like = f"{tag}-%"
    pending = await db.fetchval("SELECT to_regclass('pending_events') IS NOT NULL")
    query = "SELECT (SELECT count(*) FROM events WHERE session_id LIKE $1)"
    if pending:
        query += " + (SELECT count(*) FROM pending_events WHERE session_id LIKE $1)"
    return int(await db.fetchval(query, like))


async def _drive(
    servers: list[LiveServer],
    cfg: Config,
    tag: str,
    db: asyncpg.Connection,
    database: str,
    checks: Checks,
    bouncer_pid: int | None,
) -> dict[str, Any]:
    n = cfg.writers_clients
    conns = [Connection(LOOPBACK, servers[i % len(servers)].port) for i in range(n)]
    writers = [_Writer(c, f"{tag}-w{i}", checks) for i, c in enumerate(conns)]
    activity: Counter[str] = Counter()
    samples = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal samples
        while not stop.is_set():
            rows = await db.fetch(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            samples += 1
            for state, wait_type, wait in rows:
                if state == "active":
                    activity["active"] += 1
                    activity[f"active: {wait_type}:{wait}" if wait_type else "active: running"] += 1
                elif state == "idle in transaction":
                    activity["idle in transaction"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_S)

    deadline = 0.0
    start = asyncio.Event()

    async def loop(writer: _Writer) -> None:
        await start.wait()
        while time.perf_counter() < deadline and not writer.errors:
            await writer.step()

    pids = [pid for s in servers for pid in s.worker_pids]
    try:
        # Seeding (untimed) also opens every connection and warms the servers up.
        for first in range(0, n, 32):
            seeded = await asyncio.gather(*(w.seed() for w in writers[first : first + 32]))
            if not all(seeded):
                errors = [e for w in writers for e in w.errors]
                raise RuntimeError(f"seeding failed: {errors[:2]}")
        await asyncio.gather(*(w.wake() for w in writers))
        tasks = [asyncio.create_task(loop(w)) for w in writers]
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(0)
        cpu = CpuWindow(pids, bouncer_pid)
        began = time.perf_counter()
        deadline = began + cfg.writers_seconds
        start.set()
        await finish_within(tasks, cfg.writers_seconds + cfg.grace_seconds)
        elapsed = time.perf_counter() - began
        cpu_loads = cpu.loads(elapsed)
        stop.set()
        await sampler
        errors = [e for w in writers for e in w.errors]
        if not errors:
            await asyncio.gather(*(w.check_stored() for w in writers))
            acknowledged = sum(w.acknowledged for w in writers)
            logged = await _events_logged(db, tag)
            if logged != acknowledged:
                checks.fail(f"{tag}: {logged} events logged for {acknowledged} acknowledged writes")
    finally:
        stop.set()
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    for error in errors[:5]:
        checks.fail(f"request failed: {error}")
    every = [x for w in writers for kind in KINDS for x in w.latencies[kind]]
    by_kind = {
        kind: {
            "requests": sum(len(w.latencies[kind]) for w in writers),
            **latency_ms([x for w in writers for x in w.latencies[kind]], "p50", "p99"),
        }
        for kind in KINDS
    }
    per_sample = {k: v / samples for k, v in activity.most_common()} if samples else {}
    return {
        "seconds": elapsed,
        "requests": len(every),
        "requests_per_s": len(every) / elapsed,
        **latency_ms(every, "p50", "p99"),
        "by_kind": by_kind,
        "errors": len(errors),
        # Requests of the slowest and the fastest writer: with several workers, the
        # kernel spreads the keep-alive connections unevenly over them.
        "slowest_writer_requests": min(sum(len(v) for v in w.latencies.values()) for w in writers),
        "fastest_writer_requests": max(sum(len(v) for v in w.latencies.values()) for w in writers),
        **cpu_loads,
        # The database's backends, mean per sample: active ones, and what they waited on.
        "backends": per_sample,
        "lock_waiting": sum(v for k, v in per_sample.items() if k.startswith("active: Lock:")),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


async def _setups(
    trees: list[_Tree],
    cfg: Config,
    prefix: str,
    log: Callable[[str], None],
    urls: dict[str, str],
    admin_url: str,
    pgbouncer_url: str | None,
    checks: Checks,
) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """The REST runs of every setup; (setups, skipped, PgBouncer description)."""
    setups: list[dict[str, Any]] = []
    skipped: list[str] = []
    bouncer: RunPgBouncer | None = None
    if any(mode == "pgbouncer" for mode, _, _ in cfg.writers_setups):
        found = await pgbouncer_for_run(admin_url, pgbouncer_url, log, "writers")
        if isinstance(found, str):
            skipped.append(f"PgBouncer setups: {found}")
            log(f"writers: PgBouncer setups skipped: {found}")
        else:
            bouncer = found
    bouncer_pid = bouncer.pid if bouncer is not None else None
    try:
        for mode, instances, workers in cfg.writers_setups:
            if mode == "pgbouncer" and bouncer is None:
                continue
            runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in trees}
            for round_ in range(cfg.writers_rounds):
                for tree in _order(trees, round_):
                    database = urlsplit(urls[f"{tree.name}-{mode}"]).path.lstrip("/")
                    direct = with_database(admin_url, database)
                    env = {
                        "AGENT_RUNTIME__DB_URL": direct,
                        "AGENT_RUNTIME__DB_POOLER": "none",
                        "AGENT_RUNTIME__DB_DIRECT_URL": direct,
                        "AGENT_RUNTIME__LOG_LEVEL": "warning",
                    }
                    if mode == "pgbouncer" and bouncer is not None:
                        env["AGENT_RUNTIME__DB_URL"] = bouncer.url(database)
                        env["AGENT_RUNTIME__DB_POOLER"] = "pgbouncer"
                    tag = f"{prefix}-wr-{tree.name}-{mode}{instances}x{workers}-r{round_}"
                    result = await _run_once(
                        tree, env, instances, workers, cfg, tag, direct, database, checks,
                        bouncer_pid if mode == "pgbouncer" else None,
                    )  # fmt: skip
                    result["round"] = round_
                    runs[tree.name].append(result)
                    log(
                        f"writers {tree.name:<6} {mode:<9} {instances} x {workers} workers: "
                        f"{result['requests_per_s']:.0f} req/s, p50 {result['p50_ms'] or 0:.1f}"
                        f" ms, p99 {result['p99_ms'] or 0:.1f} ms, lock-waiting backends "
                        f"{result['lock_waiting']:.1f}, errors {result['errors']}"
                    )
            summary = {
                name: {
                    key: _median(tree_runs, key)
                    for key in ("requests_per_s", "p50_ms", "p99_ms", "lock_waiting")
                }
                for name, tree_runs in runs.items()
            }
            setups.append(
                {
                    "mode": mode,
                    "instances": instances,
                    "workers": workers,
                    "runs": runs,
                    "summary": summary,
                }
            )
    finally:
        if bouncer is not None:
            await bouncer.stop()
    return setups, skipped, bouncer.description if bouncer is not None else None


async def _run_once(
    tree: _Tree,
    env: dict[str, str],
    instances: int,
    workers: int,
    cfg: Config,
    tag: str,
    direct_url: str,
    database: str,
    checks: Checks,
    bouncer_pid: int | None,
) -> dict[str, Any]:
    db = await asyncpg.connect(direct_url)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-writers-") as log_dir:
            async with contextlib.AsyncExitStack() as stack:
                servers = [
                    await stack.enter_async_context(_serve(tree, env, workers, Path(log_dir)))
                    for _ in range(instances)
                ]
                result = await _drive(servers, cfg, tag, db, database, checks, bouncer_pid)
                for server in servers:
                    for line in prepared_statement_lines(server.output())[:3]:
                        checks.fail(f"{tree.name}: server log: {line}")
                if checks.problems:
                    result["server_log_tail"] = servers[0].log_tail()
                return result
    finally:
        await db.close()


# ---------------------------------------------------------------------------- probe


async def _probe_once(tree: _Tree, url: str, cfg: Config, tag: str) -> dict[str, Any]:
    """The probe script in a fresh interpreter of `tree` (see its docstring)."""
    code = "import runpy, sys; sys.argv[0] = sys.argv[1]; del sys.argv[1]; "
    code += "runpy.run_path(sys.argv[0], run_name='__main__')"
    args = ["--url", url, "--hold", str(cfg.probe_hold_seconds), "--tag", tag]
    args += ["--samples", str(cfg.probe_samples)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        str(_PROBE),
        *args,
        cwd=tree.root,
        env=server_environment(tree.env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), _PROBE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{tree.name}: the open-transaction probe hung") from None
    try:
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(
            f"{tree.name}: the open-transaction probe failed ({proc.returncode}):\n"
            f"{err.decode(errors='replace')[-2000:]}"
        ) from None
    return result


async def _probe(
    trees: list[_Tree], cfg: Config, prefix: str, urls: dict[str, str], checks: Checks
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in trees}
    for round_ in range(cfg.probe_rounds):
        for tree in _order(trees, round_):
            tag = f"{prefix}-otx-{tree.name}-r{round_}"
            result = await _probe_once(tree, urls[f"{tree.name}-probe"], cfg, tag)
            runs[tree.name].append(result)
            for problem in result["problems"]:
                checks.fail(f"probe {tree.name}: {problem}")
    summary: dict[str, dict[str, Any]] = {}
    for name, tree_runs in runs.items():
        if not tree_runs:
            continue
        ops = tree_runs[0]["during"].keys()
        summary[name] = {
            op: {
                "baseline_ms": statistics.median(r["baseline"][op]["median_ms"] for r in tree_runs),
                "during_ms": statistics.median(r["during"][op]["ms"] for r in tree_runs),
                "finished_before_a_committed": all(
                    r["during"][op]["finished_before_a_committed"] for r in tree_runs
                ),
            }
            for op in ops
        }
    return {"hold_s": cfg.probe_hold_seconds, "runs": runs, "summary": summary}


# ------------------------------------------------------------------------------ run


async def run(
    cfg: Config,
    prefix: str,
    log: Callable[[str], None],
    *,
    admin_url: str,
    pgbouncer_url: str | None,
    before: BeforeTree | None,
) -> dict[str, Any]:
    """Both parts, on this checkout and (if given) the `before` tree."""
    this = _Tree("after", REPO_ROOT, "this checkout")
    trees = [this] if before is None else [this, _Tree("before", before.root, before.label)]
    checks = Checks()
    load_before = os.getloadavg()
    admin_dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(admin_dsn)
    modes = sorted({mode for mode, _, _ in cfg.writers_setups})
    names = {
        f"{t.name}-{m}": f"bench_{os.getpid()}_writers_{t.name}_{m}"
        for t in trees
        for m in (*modes, "probe")
    }
    urls = {key: with_database(admin_dsn, name) for key, name in names.items()}
    out: dict[str, Any] = {
        "clients": cfg.writers_clients,
        "seconds": cfg.writers_seconds,
        "rounds": cfg.writers_rounds,
        "mix": f"per writer, its own session; per {WRITES_PER_CYCLE} writes: "
        f"{WRITES_PER_CYCLE - 1} appends of 1 message + 1 save of the whole list (fresh "
        f"dicts), then 1 approval created + decided; a new session every {MAX_MESSAGES} "
        "messages",
        "trees": {t.name: {"label": t.label, "root": str(t.root)} for t in trees},
    }
    try:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        await asyncio.gather(
            *(
                _migrate(t, urls[f"{t.name}-{m}"])
                for t in trees
                for m in modes  # the probe migrates its own (init_db)
            )
        )
        out["probe"] = await _probe(trees, cfg, prefix, urls, checks)
        for tree in trees if cfg.probe_rounds else []:
            ops = out["probe"]["summary"][tree.name]
            log(
                f"open transaction ({cfg.probe_hold_seconds:g} s), {tree.name}: "
                + ", ".join(
                    f"{op} {v['baseline_ms']:.1f} -> {v['during_ms']:.1f} ms"
                    for op, v in ops.items()
                )
            )
        setups, skipped, bouncer = await _setups(
            trees, cfg, prefix, log, urls, admin_dsn, pgbouncer_url, checks
        )
        out.update(setups=setups, skipped=skipped, pgbouncer=bouncer)
    finally:
        for name in names.values():
            with contextlib.suppress(asyncpg.PostgresError):
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    out["load_average_before"] = load_before
    out["load_average_after"] = os.getloadavg()
    out["problems"] = checks.problems
    return out


def cleanup_before(before: BeforeTree | None) -> None:
    if before is not None and before.temporary:
        shutil.rmtree(before.root, ignore_errors=True)
