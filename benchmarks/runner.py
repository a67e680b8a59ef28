"""`python -m benchmarks`: every workload, on each backend, for the three implementations,
in this one process; prints a table per backend and writes JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from benchmarks import backends, machine, report
from benchmarks.base import Impl
from benchmarks.config import FULL, SMOKE, Config
from benchmarks.floor import make_floor
from benchmarks.legacy import Legacy
from benchmarks.ours import Ours, OursAppend
from benchmarks.workloads import (
    approvals,
    concurrency,
    conversation,
    hitl,
    http,
    langgraph,
    pooler,
    rest,
    writers,
)

BACKENDS = ("sqlite", "postgres")
WORKLOADS = (
    "conversation",
    "concurrency",
    "approvals",
    "http",
    "rest",
    "hitl",
    "pooler",
    "writers",
    "langgraph",
)
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _csv(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        unknown = sorted(set(items) - set(allowed))
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return items

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark this project's service API against the legacy SQLAlchemy "
        "design and a raw-driver floor, on SQLite and PostgreSQL.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes and durations (about a minute; CI)"
    )
    parser.add_argument(
        "--backends", type=_csv(BACKENDS), default=list(BACKENDS), help="default: sqlite,postgres"
    )
    parser.add_argument(
        "--workloads",
        type=_csv(WORKLOADS),
        default=list(WORKLOADS),
        help=f"default: {','.join(WORKLOADS)} (conversation = save and load at each N; "
        "rest = this project's REST endpoints vs a bare Starlette floor, both under uvicorn; "
        "hitl = approval waits on multi-worker uvicorn servers: decision-to-wake latency, "
        "memory per waiter; pooler = PostgreSQL directly vs through PgBouncer, 1 and 2 "
        "uvicorn instances, PostgreSQL only; writers = writers on distinct sessions over "
        "REST at 1, 2, 4 workers and 2 instances behind PgBouncer, and the open-transaction "
        "probe, PostgreSQL only, see --before; langgraph = a 40-step LangGraph graph with "
        "AgentRuntimeSaver vs LangGraph's own AsyncSqliteSaver / AsyncPostgresSaver)",
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL admin URL; the suite creates and drops its own bench_* databases "
        f"there (default {DEFAULT_PG_URL})",
    )
    parser.add_argument(
        "--pgbouncer-url",
        help="`pooler` workload: a PgBouncer (transaction mode) in front of the --pg-url "
        "server, any database name in the URL (default: start a private one if the "
        "pgbouncer binary is installed, else skip the workload)",
    )
    parser.add_argument(
        "--before",
        metavar="REF_OR_DIR",
        help="`writers` workload: also measure an older version, alternating with this "
        "checkout: a git ref of this repository (extracted with `git archive` into a temp "
        "directory) or a directory holding such a tree (served from there with PYTHONPATH "
        "pointing at it and this virtualenv's packages; issue 14/15: the commit before "
        "c8e7689)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"JSON output (default {RESULTS.name}/latest.json, or smoke.json with --smoke)",
    )
    return parser.parse_args(argv)


def _logger(backend: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"[{backend}] {message}", file=sys.stderr, flush=True)

    return log


async def _run_backend(
    dbs: backends.Databases, cfg: Config, workloads: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    log = _logger(dbs.backend)
    # Distinct ids per backend, in case anything in the process remembers sessions by id.
    prefix = dbs.backend[:2]
    ours = Ours(dbs.urls["ours"])
    impls: list[Impl] = [Legacy(dbs.urls["legacy"]), ours]
    impls.append(make_floor(dbs.urls["floor"]))
    results: dict[str, Any] = {}
    opened: list[Impl] = []
    try:
        for impl in impls:
            await impl.open()
            opened.append(impl)
        if "conversation" in workloads:
            appending = cast(Impl, OursAppend(ours))
            results.update(await conversation.run([*impls, appending], cfg, prefix, log))
        if "concurrency" in workloads:
            results["concurrency"] = await concurrency.run(impls, cfg, prefix, log)
        if "approvals" in workloads:
            results["approvals"] = await approvals.run(impls, cfg, prefix, log)
    finally:
        for impl in reversed(opened):
            await impl.close()
    if "langgraph" in workloads:  # in-process: after the implementations have closed
        results["langgraph"] = await langgraph.run(dbs, cfg, prefix, log)
    if "http" in workloads:
        results["http"] = await http.run(dbs.urls["http"], cfg, prefix)
        h = results["http"]
        log(
            f"HTTP {h['requests_per_s']:.0f} req/s  p50 {h['p50_ms']:.1f} ms"
            f"  p99 {h['p99_ms']:.1f} ms  errors {h['errors']}"
        )
    if "rest" in workloads:
        results["rest"] = await rest.run(dbs, cfg, prefix, log)
    if "hitl" in workloads:
        results["hitl"] = await hitl.run(dbs, cfg, prefix, log)
    if "pooler" in workloads and dbs.backend == "postgres":
        results["pooler"] = await pooler.run(
            dbs, cfg, prefix, log, admin_url=args.pg_url, pgbouncer_url=args.pgbouncer_url
        )
    if "writers" in workloads and dbs.backend == "postgres":
        results["writers"] = await writers.run(
            cfg,
            prefix,
            log,
            admin_url=args.pg_url,
            pgbouncer_url=args.pgbouncer_url,
            before=args.before_tree,
        )
    rat = report.ratios(results)
    return {
        "version": dbs.version,
        "results": results,
        "ratios": rat,
        "targets": report.targets(results, rat),
        "sanity_problems": report.sanity(results),
    }


async def run(args: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": cfg.mode,
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "config": vars(cfg),
        "machine": machine.describe(),
    }
    out: dict[str, Any] = {"meta": meta, "backends": {}}
    if "postgres" in args.backends:
        await backends.check_postgres(args.pg_url)
    for backend in args.backends:
        provision = backends.sqlite() if backend == "sqlite" else backends.postgres(args.pg_url)
        async with provision as dbs:
            if backend == "postgres":
                meta["postgres_version"] = dbs.version
            out["backends"][backend] = await _run_backend(dbs, cfg, args.workloads, args)
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    path: Path = args.out or RESULTS / ("smoke.json" if args.smoke else "latest.json")
    args.before_tree = None
    if args.before and "writers" in args.workloads and "postgres" in args.backends:
        try:
            args.before_tree = writers.prepare_before(args.before)
        except ValueError as exc:
            print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
            return 2
    try:
        data = asyncio.run(run(args, cfg))
    except backends.Unavailable as exc:
        print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
        return 2
    finally:
        writers.cleanup_before(args.before_tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")

    print(report.machine_line(data["meta"]))
    print(report.LEGEND)
    problems: list[str] = []
    for backend, result in data["backends"].items():
        print()
        print(report.table(backend, result))
        problems += [f"{backend}: {p}" for p in result["sanity_problems"]]
    print(f"\n{data['meta']['duration_s']} s; results written to {path}")
    for problem in problems:
        print(f"SANITY: {problem}", file=sys.stderr)
    return 1 if problems else 0
