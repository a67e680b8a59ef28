"""Ratios, targets (issue 4) and the printed tables, all from one run's results.

Ratios are cost ratios: `legacy/ours` > 1 means ours is that many times cheaper than the
legacy design; `ours/floor` is how many times the raw floor's cost ours pays (1 = at the
floor). For throughput rows the cost of an operation is 1 / (ops/s).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

IMPLS = ("legacy", "ours", "floor")
_LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def _get(tree: dict[str, Any], *keys: str) -> Any:
    node: Any = tree
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("save", "load"):
        sizes = sorted({n for impl in _get(results, kind) or {} for n in results[kind][impl]})
        for n in sorted(sizes, key=int):
            legacy, ours, floor = (_get(results, kind, i, n, "median_ms") for i in IMPLS)
            out.setdefault(kind, {})[n] = {
                "legacy_over_ours": _ratio(legacy, ours),
                "ours_over_floor": _ratio(ours, floor),
            }
    if "concurrency" in results:
        legacy, ours, floor = (_get(results, "concurrency", i, "ops_per_s") for i in IMPLS)
        out["concurrency"] = {
            "legacy_over_ours": _ratio(ours, legacy),
            "ours_over_floor": _ratio(floor, ours),
        }
    if "approvals" in results:
        legacy, ours, floor = (_get(results, "approvals", i, "median_ms") for i in IMPLS)
        out["approvals"] = {
            "legacy_over_ours": _ratio(legacy, ours),
            "ours_over_floor": _ratio(ours, floor),
        }
    if "rest" in results:
        out["rest"] = _rest_ratios(results["rest"])
    if results.get("writers", {}).get("setups"):
        out["writers"] = _writers_ratios(results["writers"])
    if "ours" in results.get("langgraph", {}):
        out["langgraph"] = _langgraph_ratios(results["langgraph"])
    return out


def _langgraph_ratios(lg: dict[str, Any]) -> dict[str, Any]:
    """ours/theirs for the `langgraph` workload (>1 = ours slower): per step (median,
    p90), the replayed saver calls per step, each call, and the read of the latest."""
    out = {
        f"per_step_{q}": _ratio(
            _get(lg, "ours", "per_step", f"{q}_ms"), _get(lg, "theirs", "per_step", f"{q}_ms")
        )
        for q in ("median", "p90")
    }
    out["replay_per_step"] = _ratio(
        _get(lg, "ours", "replay_per_step", "median_ms"),
        _get(lg, "theirs", "replay_per_step", "median_ms"),
    )
    for op in _get(lg, "ours", "ops") or {}:
        out[op] = _ratio(
            _get(lg, "ours", "ops", op, "median_ms"), _get(lg, "theirs", "ops", op, "median_ms")
        )
    out["read_latest"] = _ratio(
        _get(lg, "ours", "read_latest", "median_ms"), _get(lg, "theirs", "read_latest", "median_ms")
    )
    return out


def _writers_setup_name(setup: dict[str, Any]) -> str:
    return f"{setup['mode']} {setup['instances']}x{setup['workers']}"


def _writers_ratios(writers: dict[str, Any]) -> dict[str, Any]:
    """after/before for the `writers` workload: requests per second (>1 = after
    faster), p50 and p99 (<1 = after faster)."""
    out: dict[str, Any] = {}
    for setup in writers["setups"]:
        after, before = setup["summary"].get("after"), setup["summary"].get("before")
        if after and before:
            out[_writers_setup_name(setup)] = {
                key: _ratio(after.get(key), before.get(key))
                for key in ("requests_per_s", "p50_ms", "p99_ms")
            }
    return out


def _rest_ratios(rest: dict[str, Any]) -> dict[str, Any]:
    """ours/floor for the REST workload: times (>1 = ours slower), and for the concurrent
    run the ratio of requests per second (<1 = ours slower)."""
    out: dict[str, Any] = {}
    for method in ("post", "get"):
        for n in rest.get(method, {}).get("ours", {}):
            ours, floor = _get(rest, method, "ours", n), _get(rest, method, "floor", n)
            out.setdefault(method, {})[n] = {
                q: _ratio(ours.get(q), floor.get(q)) for q in ("p50_ms", "p90_ms", "max_ms")
            }
    out["requests_per_s"] = _ratio(
        _get(rest, "concurrent", "ours", "requests_per_s"),
        _get(rest, "concurrent", "floor", "requests_per_s"),
    )
    out["service_save"] = _ratio(
        _get(rest, "service", "ours", "median_ms"), _get(rest, "service", "floor", "median_ms")
    )
    return out


def _rest_targets(
    results: dict[str, Any], rat: dict[str, Any]
) -> list[tuple[str, Any, Callable[[float], bool], str]]:
    rest = results.get("rest")
    if not rest:
        return []
    small, large = (str(n) for n in rest["sizes"])
    r = rat.get("rest", {})
    clients = _get(rest, "concurrent", "ours", "clients")
    service_n = _get(rest, "service", "size")
    return [
        (
            f"REST POST N={small} p50 <= 1.5x floor",
            _get(r, "post", small, "p50_ms"),
            lambda v: v <= 1.5,
            "x",
        ),
        (
            f"REST POST N={large} p50 <= 1.5x floor",
            _get(r, "post", large, "p50_ms"),
            lambda v: v <= 1.5,
            "x",
        ),
        (
            f"REST POST N={large} p90 <= 2x floor",
            _get(r, "post", large, "p90_ms"),
            lambda v: v <= 2,
            "x",
        ),
        (
            f"REST GET N={small} p50 <= 1.5x floor",
            _get(r, "get", small, "p50_ms"),
            lambda v: v <= 1.5,
            "x",
        ),
        (
            f"REST GET N={large} p50 <= 2x floor",
            _get(r, "get", large, "p50_ms"),
            lambda v: v <= 2,
            "x",
        ),
        (
            f"REST {clients} clients >= 0.6x floor req/s",
            r.get("requests_per_s"),
            lambda v: v >= 0.6,
            "x",
        ),
        (
            f"REST POST N={large}: none > 3x median (GC)",
            _get(rest, "gc", "ours", "slower_than_3x_median"),
            lambda v: v == 0,
            "slow",
        ),
        (
            f"save N={service_n} fresh input <= 1.5x append+compare",
            r.get("service_save"),
            lambda v: v <= 1.5,
            "x",
        ),
    ]


def _hitl_targets(
    results: dict[str, Any],
) -> list[tuple[str, Any, Callable[[float], bool], str]]:
    hitl = results.get("hitl")
    if not hitl:
        return []
    lat = hitl.get("latency") or {}
    runs = _get(hitl, "memory", "runs") or []
    rows: list[tuple[str, Any, Callable[[float], bool], str]] = []
    if lat:
        target = lat["target_p99_ms"]
        rows.append(
            (
                f"HITL wake p99 <= {target:.0f} ms ({lat['workers']} workers)",
                lat.get("p99_ms"),
                lambda v: v <= target,
                "ms",
            )
        )
    waiters = lat.get("waiters", 0) + sum(r["waiters"] for r in runs)
    woke = lat.get("woke", 0) + sum(r["woke"] for r in runs)
    rows.append(
        (
            "HITL: every waiter woke (missed)",
            waiters - woke if waiters else None,
            lambda v: v == 0,
            "missed",
        )
    )
    return rows


def targets(results: dict[str, Any], rat: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each PASS / MISS with the measured value (n/a if not run)."""
    ours_save = _get(results, "save", "ours")
    conc = _get(results, "concurrency", "ours")
    growth = append_growth = None
    if ours_save and "10" in ours_save and "10000" in ours_save:
        growth = _ratio(ours_save["10000"]["median_ms"], ours_save["10"]["median_ms"])
    appends = _get(results, "save", "ours-append")
    if appends and "10" in appends and "10000" in appends:
        append_growth = _ratio(appends["10000"]["median_ms"], appends["10"]["median_ms"])
    rows: list[tuple[str, Any, Callable[[float], bool], str]] = [
        (
            "save N=1000: >= 20x faster than legacy",
            _get(rat, "save", "1000", "legacy_over_ours"),
            lambda v: v >= 20,
            "x",
        ),
        (
            "save N=1000: within 2x of floor",
            _get(rat, "save", "1000", "ours_over_floor"),
            lambda v: v <= 2,
            "x",
        ),
        ("save N=10000 <= 1.5x save N=10 (ours)", growth, lambda v: v <= 1.5, "x"),
        (
            "  same with append_messages (beyond legacy)",
            append_growth,
            lambda v: v <= 1.5,
            "x",
        ),
        (
            "load N=1000: within 1.5x of floor",
            _get(rat, "load", "1000", "ours_over_floor"),
            lambda v: v <= 1.5,
            "x",
        ),
        (
            "load N=1000: >= 2x faster than legacy",
            _get(rat, "load", "1000", "legacy_over_ours"),
            lambda v: v >= 2,
            "x",
        ),
        (
            "64 clients: >= 5x legacy ops/s",
            _get(rat, "concurrency", "legacy_over_ours"),
            lambda v: v >= 5,
            "x",
        ),
        (
            "64 clients: every client progresses",
            conc["min_client_ops"] if conc else None,
            lambda v: v >= 1,
            "ops",
        ),
        ("64 clients: p99 < 250 ms", conc["p99_ms"] if conc else None, lambda v: v < 250, "ms"),
        (
            "approval save+list: >= 3x legacy",
            _get(rat, "approvals", "legacy_over_ours"),
            lambda v: v >= 3,
            "x",
        ),
        *_rest_targets(results, rat),
        *_hitl_targets(results),
        (
            "LangGraph per step <= 1.0x its own saver",
            _get(rat, "langgraph", "per_step_median"),
            lambda v: v <= 1.0,
            "x",
        ),
    ]
    return [
        {
            "target": name,
            "measured": value,
            "unit": unit,
            "status": "n/a" if value is None else ("PASS" if check(value) else "MISS"),
        }
        for name, value, check, unit in rows
    ]


def sanity(results: dict[str, Any]) -> list[str]:
    """Problems that make the numbers meaningless (not timings): ours or the floor not
    loading back what was saved, not listing an approval, or failing requests."""
    problems = []
    for impl in ("ours", "floor"):
        for n, load in (_get(results, "load", impl) or {}).items():
            if not load["loads_back_as_saved"]:
                problems.append(f"{impl}: load at N={n} did not return the saved messages")
        if _get(results, "approvals", impl, "lists_the_new_approval") is False:
            problems.append(f"{impl}: approval list did not end with the approval just saved")
        errors = _get(results, "concurrency", impl, "errors")
        if errors:
            first = _get(results, "concurrency", impl, "first_errors")
            problems.append(f"{impl}: {errors} errors under concurrency, e.g. {first[:1]}")
    problems += [f"rest: {p}" for p in _get(results, "rest", "problems") or []]
    problems += [f"hitl: {p}" for p in _get(results, "hitl", "problems") or []]
    problems += [f"pooler: {p}" for p in _get(results, "pooler", "problems") or []]
    problems += [f"writers: {p}" for p in _get(results, "writers", "problems") or []]
    problems += [f"langgraph: {p}" for p in _get(results, "langgraph", "problems") or []]
    if _get(results, "http", "errors"):
        problems.append(
            f"http: {results['http']['errors']} failed requests, e.g. "
            f"{results['http']['first_errors'][:1]}"
        )
    return problems


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def _pair(summary: dict[str, Any] | None, a: str, b: str) -> str:
    if not summary or summary.get(a) is None:
        return "-"
    return f"{_num(summary[a])} | {_num(summary[b])}"


def table(backend: str, data: dict[str, Any]) -> str:
    results, rat = data["results"], data["ratios"]
    head = f"{'':<28}{'legacy':>16}{'ours':>16}{'floor':>16}{'legacy/ours':>13}{'ours/floor':>12}"
    title = f"== {_LABELS.get(backend, backend)} {data['version']} (times in ms: median | p99) =="
    lines = [title, head]

    def row(label: str, cells: list[str], ratio: dict[str, Any] | None) -> None:
        r = ratio or {}
        lines.append(
            f"{label:<28}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}"
            f"{_x(r.get('legacy_over_ours')):>13}{_x(r.get('ours_over_floor')):>12}"
        )

    for kind in ("save", "load"):
        for n in sorted(rat.get(kind, {}), key=int):
            cells = [_pair(_get(results, kind, i, n), "median_ms", "p99_ms") for i in IMPLS]
            row(f"{kind} N={n}", cells, rat[kind][n])
    appends = _get(results, "save", "ours-append") or {}
    if appends:
        lines.append(
            "ours, appending only the new message (append_messages): "
            + ", ".join(f"N={n} {_num(appends[n]['median_ms'])}" for n in sorted(appends, key=int))
        )
    for impl in IMPLS:
        bad = [
            n
            for n, r in (_get(results, "load", impl) or {}).items()
            if not r["loads_back_as_saved"]
        ]
        if bad:
            lines.append(f"{impl} loaded messages out of saved order at N={', '.join(bad)}")
    conc = results.get("concurrency")
    if conc:
        clients = next(iter(conc.values()))["clients"]
        row(
            f"{clients} clients ops/s",
            [_num(_get(conc, i, "ops_per_s")) for i in IMPLS],
            rat.get("concurrency"),
        )
        row(
            f"{clients} clients p50 | p99",
            [_pair(conc.get(i), "p50_ms", "p99_ms") for i in IMPLS],
            None,
        )
        row(
            f"{clients} clients ops min | max",
            [_pair(conc.get(i), "min_client_ops", "max_client_ops") for i in IMPLS],
            None,
        )
        row(f"{clients} clients errors", [str(_get(conc, i, "errors")) for i in IMPLS], None)
    if "approvals" in results:
        cells = [_pair(_get(results, "approvals", i), "median_ms", "p99_ms") for i in IMPLS]
        row("approval save+list", cells, rat.get("approvals"))
    http = results.get("http")
    if http:
        lines.append(
            f"HTTP via uvicorn (ours), {http['connections']} connections, POST+GET: "
            f"{_num(http['requests_per_s'])} req/s, p50 {_num(http['p50_ms'])} ms, "
            f"p99 {_num(http['p99_ms'])} ms, slowest connection {http['min_connection_ops']} "
            f"ops, errors {http['errors']}; CPU cores busy: server {_num(http['server_cpu_load'])}"
            f", load generator {_num(http['client_cpu_load'])}"
        )
    if "rest" in results:
        lines += _rest_table(results["rest"], rat.get("rest", {}))
    if "hitl" in results:
        lines += _hitl_table(results["hitl"])
    if "pooler" in results:
        lines += pooler_table(results["pooler"])
    if "writers" in results:
        lines += writers_table(results["writers"], rat.get("writers", {}))
    if "langgraph" in results:
        lines += langgraph_table(results["langgraph"], rat.get("langgraph", {}))
    lines.append("targets:")
    for t in data["targets"]:
        value, unit = t["measured"], t["unit"]
        if value is None:
            shown = "not measured"
        elif unit == "x":
            shown = f"measured {_x(value)}"
        else:
            shown = f"measured {_num(value)} {unit}"
        lines.append(f"  {t['status']:<5} {t['target']:<42} {shown}")
    return "\n".join(lines)


def _rest_table(rest: dict[str, Any], rat: dict[str, Any]) -> list[str]:
    lines = [
        f"REST via uvicorn, ours vs the Starlette floor (floor JSON: {rest['floor_json']}); "
        "times in ms",
        f"{'':<28}{'ours':>16}{'floor':>16}{'ours/floor':>13}",
    ]
    for name in ("ours", "floor"):
        wrong = [p for p in rest.get("problems", []) if p.startswith(f"{name}:")]
        if wrong:
            lines.append(
                f"  !! {name} answered wrongly ({len(wrong)}+ times; SANITY below): its "
                "figures time wrong answers"
            )

    def row(label: str, ours: Any, floor: Any, ratio: float | None) -> None:
        lines.append(f"{label:<28}{_num(ours):>16}{_num(floor):>16}{_x(ratio):>13}")

    for method, quantiles in (("post", ("p50", "p90", "max")), ("get", ("p50", "p90"))):
        for n in rest.get(method, {}).get("ours", {}):
            for q in quantiles:
                key = f"{q}_ms"
                row(
                    f"{method.upper()} N={n} {q}",
                    _get(rest, method, "ours", n, key),
                    _get(rest, method, "floor", n, key),
                    _get(rat, method, n, key),
                )
    gc = rest.get("gc")
    if gc:
        for name in ("ours", "floor"):
            g = gc[name]
            lines.append(
                f"  {name} POST N={g['size']}: {g['slower_than_3x_median']} of {g['n']} samples "
                f"> 3x median ({_num(g['threshold_ms'])} ms), max {_num(g['max_ms'])} ms"
            )
    conc = rest.get("concurrent")
    if conc:
        ours, floor = conc["ours"], conc["floor"]
        lines.append(
            f"{str(ours['clients']) + ' clients req/s':<28}{_num(ours['requests_per_s']):>16}"
            f"{_num(floor['requests_per_s']):>16}{_x(rat.get('requests_per_s')):>13}"
            "  (ratio of req/s)"
        )
        rounds = [
            f"{name} " + ", ".join(_num(r["requests_per_s"]) for r in conc[name]["rounds"])
            for name in ("ours", "floor")
        ]
        lines.append(f"  per run (one server at a time, alternating): {'; '.join(rounds)}")
    service = rest.get("service")
    if service:
        row(
            f"service save N={service['size']} p50",
            _get(service, "ours", "median_ms"),
            _get(service, "floor", "median_ms"),
            rat.get("service_save"),
        )
        lines.append("  (service level, no HTTP: fresh dicts; floor = append one row + compare)")
    return lines


def _hitl_table(hitl: dict[str, Any]) -> list[str]:
    load = " / ".join(
        f"{hitl[k][0]:.2f}" for k in ("load_average_before", "load_average_after") if k in hitl
    )
    lines = [
        f"HITL via uvicorn: waits woken by decisions sent to {hitl['decisions_from']} "
        f"(1-min load average before / after: {load})"
    ]
    if hitl.get("problems"):
        lines.append(
            f"  !! {len(hitl['problems'])}+ wrong answers (SANITY below): its figures time "
            "wrong answers"
        )
    lat = hitl.get("latency")
    if lat:
        parked = lat["parked"]
        spread = ", ".join(str(n) for n in parked["per_worker"].values())
        lines.append(
            f"  wake latency, {lat['workers']} workers, {lat['waiters']} waiters decided one at "
            f"a time (decision sent -> waiter's answer): p50 {_num(lat['p50_ms'])} ms, p99 "
            f"{_num(lat['p99_ms'])} ms, max {_num(lat['max_ms'])} ms; woke {lat['woke']}/"
            f"{lat['waiters']}"
        )
        per_worker = "; ".join(
            f"{_num(w['p50_ms'])} | {_num(w['p99_ms'])}" for w in lat["per_worker"].values()
        )
        lines.append(
            f"  waiters per worker {spread}; per worker p50 | p99 ms: {per_worker}; decision "
            f"round trip p50 {_num(lat['decision_round_trip']['p50_ms'])} ms"
        )
    memory = hitl.get("memory")
    if memory:
        pool = f", pool max {memory['pool_max_size']}" if memory["pool_max_size"] else ""
        for r in memory["runs"]:
            lines.append(
                f"  1 worker{pool}, K={r['k']} parked: RSS {_mib(r['rss_before_kib'])} -> "
                f"{_mib(r['rss_with_waiters_kib'])} MiB = {_num(r['kib_per_waiter'])} KiB/waiter"
                f" (after: {_mib(r['rss_after_kib'])} MiB); woke {r['woke']}/{r['waiters']}, "
                f"parked in {_num(r['parked']['parked_s'])} s, all answered "
                f"{_num(r['all_answered_s'])} s after the first decision"
            )
    return lines


_POOLER_MODES = {
    "direct": "direct",
    "nocache": "direct, no stmt cache",
    "pgbouncer": "PgBouncer (transaction)",
}


def pooler_table(pooler: dict[str, Any]) -> list[str]:
    """The `pooler` workload: one row per (mode, instances, clients)."""
    if "skipped" in pooler:
        return [f"pooler (direct vs PgBouncer): skipped: {pooler['skipped']}"]
    lines = [
        f"pooler: PostgreSQL directly vs through PgBouncer ({pooler['pgbouncer']}); "
        f"uvicorn instances of {pooler['workers_per_instance']} workers; {pooler['load']}; "
        f"1-min load average before / after: {pooler['load_average_before'][0]:.2f} / "
        f"{pooler['load_average_after'][0]:.2f}",
        f"{'mode':<24}{'instances':>10}{'clients':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server conns':>14}{'errors':>8}{'CPU srv|cli|pgb':>17}",
    ]
    if pooler.get("problems"):
        lines.append(
            f"  !! {len(pooler['problems'])}+ wrong answers or errors (SANITY below): its "
            "figures time them"
        )
    for r in pooler["runs"]:
        cpu = "|".join(
            _num(r.get(k)) for k in ("server_cpu_load", "client_cpu_load", "pgbouncer_cpu_load")
        )
        mode = _POOLER_MODES.get(r["mode"], r["mode"])
        lines.append(
            f"{mode:<24}{r['instances']:>10}{r['clients']:>9}{_num(r['requests_per_s']):>9}"
            f"{_num(r['p50_ms']):>9}{_num(r['p99_ms']):>9}"
            f"{_num(r['server_connections_max']):>14}{r['errors']:>8}{cpu:>17}"
        )
    lines.append(
        "  server conns: max of pg_stat_activity for the database during the run, the "
        "workers' direct LISTEN connections included (1 per worker); CPU: cores busy "
        "(servers | load generator | PgBouncer); no stmt cache: directly, with "
        "AGENT_RUNTIME__DB_POOLER=pgbouncer (what the setting costs without the pooler)"
    )
    return lines


def writers_table(writers: dict[str, Any], rat: dict[str, Any]) -> list[str]:
    """The `writers` workload: the probe, then one row per (setup, tree)."""
    trees = writers["trees"]
    label = "; ".join(f"{name}: {t['label']}" for name, t in trees.items())
    load = " / ".join(f"{writers[k][0]:.2f}" for k in ("load_average_before", "load_average_after"))
    lines = [f"writers in parallel ({label}; 1-min load average before / after: {load})"]
    if writers.get("problems"):
        lines.append(
            f"  !! {len(writers['problems'])}+ wrong answers or errors (SANITY below): its "
            "figures time them"
        )
    probe = writers.get("probe")
    if probe and probe["summary"]:
        names = list(probe["summary"])
        lines.append(
            f"open transaction: A's transaction open {probe['hold_s']:g} s (service API, "
            "in-process); latency in ms: the four at once with nothing open -> while A is open"
        )
        lines.append(f"{'':<28}" + "".join(f"{name:>22}" for name in names))
        for op in probe["summary"][names[0]]:
            cells = []
            for name in names:
                v = probe["summary"][name][op]
                waited = "" if v["finished_before_a_committed"] else "*"
                cells.append(f"{_num(v['baseline_ms'])} -> {_num(v['during_ms'])}{waited}")
            lines.append(f"{op:<28}" + "".join(f"{c:>22}" for c in cells))
        lines.append("  * finished only after A's transaction committed")
    for skipped in writers.get("skipped", []):
        lines.append(f"  skipped: {skipped}")
    if not writers.get("setups"):
        return lines
    lines.append(
        f"writers on distinct sessions, REST via uvicorn: {writers['clients']} writers, "
        f"{writers['mix']}; {writers['seconds']:g} s x {writers['rounds']} rounds per tree, "
        "alternating; medians over rounds"
        + (f"; PgBouncer: {writers['pgbouncer']}" if writers.get("pgbouncer") else "")
    )
    lines.append(
        f"{'setup':<24}{'tree':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'lock waits':>12}"
        f"{'CPU srv|cli':>13}{'req/s x':>9}{'p99 x':>8}"
    )
    for setup in writers["setups"]:
        name = _writers_setup_name(setup)
        mode = "PgBouncer" if setup["mode"] == "pgbouncer" else "direct"
        shown = f"{mode}, {setup['instances']} x {setup['workers']} w"
        ratio = rat.get(name, {})
        for i, (tree, runs) in enumerate(setup["runs"].items()):
            summary = setup["summary"][tree]
            cpu = "|".join(
                _num(_median_of(runs, k)) for k in ("server_cpu_load", "client_cpu_load")
            )
            ratios_cells = (
                f"{_x(ratio.get('requests_per_s')):>9}{_x(ratio.get('p99_ms')):>8}"
                if tree == "after" and ratio
                else ""
            )
            lines.append(
                f"{shown if i == 0 else '':<24}{tree:>7}{_num(summary['requests_per_s']):>9}"
                f"{_num(summary['p50_ms']):>9}{_num(summary['p99_ms']):>9}"
                f"{_num(summary['lock_waiting']):>12}{cpu:>13}{ratios_cells}"
            )
    lines.append(
        "  lock waits: database backends waiting on a lock, mean per 100 ms sample; CPU: "
        "cores busy (servers | load generator); x: after/before (req/s > 1 and p99 < 1 = "
        "after better)"
    )
    return lines


def langgraph_table(lg: dict[str, Any], rat: dict[str, Any]) -> list[str]:
    """The `langgraph` workload: ours vs LangGraph's own saver, per step and per call."""
    if "skipped" in lg:
        return [f"LangGraph checkpointer: skipped: {lg['skipped']}"]
    ours, theirs = lg["ours"], lg["theirs"]
    lines = [
        f"LangGraph checkpointer: {lg['steps']}-step graph, state growing each step, "
        f"ainvoke on a new thread, {lg['samples']} runs each, alternating; theirs = "
        f"{lg['savers']['theirs']}; times in ms",
        f"{'':<28}{'ours':>16}{'theirs':>16}{'ours/theirs':>13}",
    ]
    if lg.get("problems"):
        lines.append(
            f"  !! {len(lg['problems'])}+ wrong states (SANITY below): its figures time them"
        )

    def row(label: str, key: str, ratio: str, figure: str = "median") -> None:
        a, b = _get(ours, key, f"{figure}_ms"), _get(theirs, key, f"{figure}_ms")
        lines.append(f"{label:<28}{_num(a):>16}{_num(b):>16}{_x(rat.get(ratio)):>13}")

    row("per step p50", "per_step", "per_step_median")
    row("per step p90", "per_step", "per_step_p90", "p90")
    paired = lg.get("paired_ratio") or {}
    if paired:
        lines.append(
            f"{'  each sample ours/theirs':<28}{'':>32}{_x(paired['median']):>13}"
            f"  (median of the pairs; p90 {_x(paired['p90'])})"
        )
    row("  replayed calls, per step", "replay_per_step", "replay_per_step")
    calls = ours.get("calls_per_run") or {}
    for op in ours.get("ops", {}):
        a, b = _get(ours, "ops", op, "median_ms"), _get(theirs, "ops", op, "median_ms")
        label = f"  {op} p50 ({calls.get(op, '-')}/run)"
        lines.append(f"{label:<28}{_num(a):>16}{_num(b):>16}{_x(rat.get(op)):>13}")
    row("  aget_tuple, latest", "read_latest", "read_latest")
    lines.append(
        "  per step: ainvoke time / steps; replayed: the saver calls of one run made again "
        "one at a time (no LangGraph work, no overlap); aget_tuple latest: the whole state"
    )
    return lines


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = sorted(r[key] for r in runs if r.get(key) is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def machine_line(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    pg = meta.get("postgres_version")
    dirty = " (uncommitted changes)" if m.get("git_dirty") else ""
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}"
        + (f", PostgreSQL {pg}" if pg else "")
        + f"; git {m.get('git_commit')}{dirty}; mode {meta['mode']}"
    )


LEGEND = (
    "legacy/ours: times cheaper than the legacy design (>1 = ours faster); ours/floor: "
    "times the raw-driver floor's cost (1 = at the floor); throughput rows compare 1/(ops/s)."
)
