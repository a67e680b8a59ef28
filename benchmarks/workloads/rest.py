"""The REST path against a floor (issue 7/11): this project's app and the bare Starlette
floor of `benchmarks/http_floor.py`, each served by its own uvicorn process (one worker,
the same flags) on its own freshly migrated database of the same backend, driven by
the same low-overhead client (harness/loadclient.py) from this process.

1. sequential keep-alive client, POST of the whole list (one new message; the list of
   dicts is built anew and encoded before each request, untimed) at the small and
   large N: p50, p90, max; the two servers alternate, ours then floor, per sample;
2. GET at the same N, alternating the same way: p50, p90;
3. `rest_clients` concurrent clients, each on its own session, POST + GET alternately
   for `rest_seconds`; one server at a time, ours, floor, ours, floor ... (rounds);
4. GC pauses: the large-N POST samples slower than 3x their median (reported);
5. service level, no HTTP: `save_session` at `rest_service_size` existing messages with
   a new list of new dicts each call vs the floor's append of one row plus the one list
   comparison (cached == new[:n]) that any whole-list save must do.

Correctness checks (the only failures): every response's status and body, GET after
POST returning what was saved (also after an edit in the middle and a truncation) with
the POST's ETag, 404 for an unknown session, the service-level loads.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.backends import Databases, aerich_upgrade
from benchmarks.config import Config
from benchmarks.data import Message, conversation, message
from benchmarks.floor import make_floor
from benchmarks.http_floor import ENV_URL, FLOOR_JSON
from benchmarks.ours import Ours
from benchmarks.stats import summarize
from benchmarks.workloads.http import Checks, cpu_seconds, serve
from harness.latency import latency_ms, median
from harness.loadclient import Connection, Response, Unanswered
from harness.ports import LOOPBACK
from harness.servers import LiveServer

__all__ = ["SERVERS", "run"]

SERVERS = ("ours", "floor")
_TIMEOUT = 60.0  # one request; a hang is a failure, not a slow sample
_SAVED = {"status": "saved"}


def _summary(seconds: list[float]) -> dict[str, Any]:
    out = summarize(seconds)
    if seconds:
        out.update(latency_ms(seconds, "p50", "p90"))
    return out


def _encode(messages: list[Message]) -> bytes:
    return json.dumps(messages).encode()


@dataclass
class _Server:
    name: str
    served: LiveServer
    conn: Connection = field(init=False)

    def __post_init__(self) -> None:
        self.port, self.pid = self.served.port, self.served.pid
        self.conn = Connection(LOOPBACK, self.port)


class _Checks(Checks):
    """`Checks`, with the checks of the REST answers."""

    def saved(self, server: str, what: str, response: Response) -> str:
        """Check a POST answer; its ETag ("" if wrong)."""
        status, headers, body = response.status, response.headers, response.body
        try:
            ok = status == 200 and json.loads(body) == _SAVED
        except ValueError:
            ok = False
        if not ok:
            self.fail(f"{server}: {what} answered {status} {body[:120]!r}")
            return ""
        if "etag" not in headers:
            self.fail(f"{server}: {what} answered without an ETag")
        return headers.get("etag", "")

    def loaded(
        self,
        server: str,
        what: str,
        response: Response,
        expected: list[Message],
        etag: str | None = None,
    ) -> None:
        status, headers, body = response.status, response.headers, response.body
        try:
            data = json.loads(body) if status == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("messages") != expected:
            got = len(data["messages"]) if isinstance(data, dict) and "messages" in data else None
            self.fail(
                f"{server}: {what}: GET answered {status} with {got} messages, not the "
                f"{len(expected)} saved"
            )
        elif etag is not None and headers.get("etag") != etag:
            self.fail(f"{server}: {what}: GET ETag {headers.get('etag')} != POST's {etag}")


async def _exchange(server: _Server, method: str, path: str, body: bytes | None = None) -> Response:
    try:
        return await asyncio.wait_for(server.conn.request(method, path, body), _TIMEOUT)
    except Unanswered:
        # Once more on a new connection: uvicorn closes keep-alive connections idle for
        # 5 s (a slow phase of the other server). Saves are whole lists: idempotent.
        return await asyncio.wait_for(server.conn.request(method, path, body), _TIMEOUT)


async def _timed(
    server: _Server, method: str, path: str, body: bytes | None = None
) -> tuple[float, Response]:
    started = time.perf_counter()
    reply = await _exchange(server, method, path, body)
    return time.perf_counter() - started, reply


async def _sequential(
    servers: list[_Server], n: int, cfg: Config, prefix: str, checks: _Checks
) -> dict[str, Any]:
    """GET then POST samples at N existing messages, the servers alternating."""
    per_session = max(5, n // 10)  # every timed POST sees N .. 1.1 N messages
    sessions = dict.fromkeys(SERVERS, 0)
    length = dict.fromkeys(SERVERS, n)
    appends = dict.fromkeys(SERVERS, 0)
    etags = dict.fromkeys(SERVERS, "")

    def path(name: str) -> str:
        return f"/sessions/{prefix}-rest-n{n}-{sessions[name]}"

    async def seed(server: _Server) -> None:
        length[server.name], appends[server.name] = n, 0
        seeded = await _exchange(server, "POST", path(server.name), _encode(conversation(n)))
        etags[server.name] = checks.saved(server.name, f"seed N={n}", seeded)

    async def post(server: _Server) -> float:
        name = server.name
        if appends[name] >= per_session:
            sessions[name] += 1
            await seed(server)
        # What real callers send: a new list of new dicts, encoded, every time.
        body = _encode(conversation(length[name] + 1))
        elapsed, reply = await _timed(server, "POST", path(name), body)
        etags[name] = checks.saved(name, f"POST N={length[name]}", reply)
        length[name] += 1
        appends[name] += 1
        return elapsed

    for server in servers:
        await seed(server)
    gets: dict[str, list[float]] = {s.name: [] for s in servers}
    posts: dict[str, list[float]] = {s.name: [] for s in servers}
    for server in servers:  # GET's first answer is checked; the untimed warm-up
        for i in range(max(1, cfg.warmup)):
            reply = await _exchange(server, "GET", path(server.name))
            if i == 0:
                checks.loaded(
                    server.name, f"N={n} seeded", reply, conversation(n), etags[server.name]
                )
    gc.collect()
    for _ in range(cfg.rest_samples):
        for server in servers:
            elapsed, reply = await _timed(server, "GET", path(server.name))
            if reply.status != 200:
                checks.fail(
                    f"{server.name}: GET N={n} answered {reply.status} {reply.body[:120]!r}"
                )
            gets[server.name].append(elapsed)
    for server in servers:
        for _ in range(cfg.warmup):
            await post(server)
    for _ in range(cfg.rest_samples):
        for server in servers:
            posts[server.name].append(await post(server))
    for server in servers:  # the last session holds what the last POST sent
        reply = await _exchange(server, "GET", path(server.name))
        expected = conversation(length[server.name])
        checks.loaded(server.name, f"after POSTs at N={n}", reply, expected, etags[server.name])
    return {
        "post": {name: _summary(s) for name, s in posts.items()},
        "get": {name: _summary(s) for name, s in gets.items()},
        "post_sessions": {name: count + 1 for name, count in sessions.items()},
        "gc": {name: _gc_pauses(s) for name, s in posts.items()},
    }


def _gc_pauses(seconds: list[float]) -> dict[str, Any]:
    middle = median(seconds)
    slow = [s for s in seconds if s > 3 * middle]
    return {
        "n": len(seconds),
        "median_ms": middle * 1000,
        "max_ms": max(seconds) * 1000,
        "threshold_ms": 3 * middle * 1000,
        "slower_than_3x_median": len(slow),
    }


async def _concurrent(server: _Server, cfg: Config, prefix: str, checks: _Checks) -> dict[str, Any]:
    """`rest_clients` keep-alive clients, each POSTing (one new message) and GETting its
    own session alternately until the deadline; requests per second."""
    n = cfg.rest_clients
    conns = [Connection(LOOPBACK, server.port) for _ in range(n)]
    paths = [f"/sessions/{prefix}-{server.name}-{i}" for i in range(n)]
    # Each client keeps its messages encoded: its body is one join per request.
    base = conversation(cfg.rest_client_start)
    encoded = [[json.dumps(m).encode() for m in base] for _ in range(n)]
    requests, errors = 0, 0
    first_errors: list[str] = []
    deadline = 0.0
    start = asyncio.Event()

    def error(text: str) -> None:
        nonlocal errors
        errors += 1
        if len(first_errors) < 3:
            first_errors.append(text[:200])

    async def client(i: int) -> None:
        nonlocal requests
        await start.wait()
        while time.perf_counter() < deadline:
            mine = encoded[i]
            mine.append(json.dumps(message(len(mine))).encode())
            try:
                reply = await conns[i].request("POST", paths[i], b"[" + b",".join(mine) + b"]")
                requests += 1
                if reply.status != 200 or "etag" not in reply.headers:
                    error(f"POST {reply.status} {reply.body[:120]!r}")
                    return
                reply = await conns[i].request("GET", paths[i])
                requests += 1
                if reply.status != 200:
                    error(f"GET {reply.status} {reply.body[:120]!r}")
                    return
            except Unanswered as exc:
                error(str(exc))
                return

    try:
        seeding = asyncio.gather(
            *(
                conns[i].request("POST", paths[i], b"[" + b",".join(encoded[i]) + b"]")
                for i in range(n)
            )
        )
        try:
            seeded = await asyncio.wait_for(seeding, _TIMEOUT)
        except (TimeoutError, Unanswered) as exc:  # a wedged server: no run at all
            checks.fail(f"{server.name}: seeding the concurrent sessions failed: {exc!r}")
            return {"clients": n, "seconds": 0.0, "requests": 0, "requests_per_s": None}
        if any(reply.status != 200 for reply in seeded):
            checks.fail(f"{server.name}: seeding the concurrent sessions failed")
        tasks = [asyncio.create_task(client(i)) for i in range(n)]
        await asyncio.sleep(0)
        gc.collect()
        server_cpu = cpu_seconds(server.pid)
        began = time.perf_counter()
        deadline = began + cfg.rest_seconds
        start.set()
        _, stragglers = await asyncio.wait(tasks, timeout=cfg.rest_seconds + cfg.grace_seconds)
        for task in stragglers:
            task.cancel()
        await asyncio.gather(*stragglers, return_exceptions=True)
        elapsed = time.perf_counter() - began
        server_end = cpu_seconds(server.pid)
        if not errors:  # one client's session afterwards holds what its last POST sent
            # A new connection: uvicorn closes keep-alive connections idle for 5 s.
            probe = Connection(LOOPBACK, server.port)
            try:
                final = await probe.request("GET", paths[0])
            finally:
                await probe.close()
            expected = [json.loads(m) for m in encoded[0]]
            checks.loaded(server.name, "after the concurrent run", final, expected)
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    if errors:
        checks.fail(f"{server.name}: {errors} failed requests under concurrency: {first_errors}")
    return {
        "clients": n,
        "seconds": elapsed,
        "requests": requests,
        "requests_per_s": requests / elapsed,
        "errors": errors,
        "first_errors": first_errors,
        "server_cpu_load": None
        if server_cpu is None or server_end is None
        else (server_end - server_cpu) / elapsed,
    }


async def _semantics(servers: list[_Server], prefix: str, checks: _Checks) -> None:
    """Whole-list semantics beyond appending, the same on both servers: an edit in the
    middle, a truncation, and 404 for an unknown session."""
    for server in servers:
        path = f"/sessions/{prefix}-rest-semantics"
        steps: list[tuple[str, list[Message]]] = [("create", conversation(7))]
        edited = conversation(9)
        edited[3] = {"role": "assistant", "content": "edited"}
        steps += [("edit in the middle", edited), ("truncate", edited[:4]), ("empty", [])]
        steps += [("regrow", conversation(5))]
        for what, messages in steps:
            etag = checks.saved(
                server.name, what, await _exchange(server, "POST", path, _encode(messages))
            )
            reply = await _exchange(server, "GET", path)
            checks.loaded(server.name, what, reply, messages, etag)
        unknown = await _exchange(server, "GET", f"/sessions/{prefix}-rest-unknown")
        if unknown.status != 404:
            checks.fail(f"{server.name}: GET of an unknown session answered {unknown.status}")


async def _service(dbs: Databases, cfg: Config, prefix: str, checks: _Checks) -> dict[str, Any]:
    """save_session with fresh input at `rest_service_size` vs append-one-row-plus-compare."""
    n = cfg.rest_service_size
    ours, floor = Ours(dbs.urls["ours"]), make_floor(dbs.urls["floor"])
    session_id = f"{prefix}-rest-service-{n}"
    samples: dict[str, list[float]] = {"ours": [], "floor": []}
    await ours.open()
    try:
        await floor.open()
        try:
            await ours.seed(session_id, conversation(n))
            await floor.seed(session_id, conversation(n))
            cached = conversation(n)  # the floor's copy of what is stored: equal, not identical
            length = n

            async def save_ours() -> float:
                fresh = conversation(length + 1)
                started = time.perf_counter()
                await ours.save(session_id, fresh)
                return time.perf_counter() - started

            async def save_floor() -> float:
                nonlocal cached
                fresh = conversation(length + 1)
                started = time.perf_counter()
                if cached != fresh[: len(cached)]:
                    raise AssertionError("the floor's comparison failed")
                await floor.save(session_id, fresh)
                elapsed = time.perf_counter() - started
                cached = fresh
                return elapsed

            for _ in range(cfg.warmup):
                await save_ours()
                await save_floor()
                length += 1
            gc.collect()
            for _ in range(cfg.rest_service_samples):
                samples["ours"].append(await save_ours())
                samples["floor"].append(await save_floor())
                length += 1
            expected = conversation(length)
            for name, impl in (("ours", ours), ("floor", floor)):
                loaded = await impl.load(session_id)
                if not loaded or loaded["messages"] != expected:
                    checks.fail(f"{name}: service-level load did not return the saved messages")
        finally:
            await floor.close()
    finally:
        await ours.close()
    return {"size": n, **{name: _summary(s) for name, s in samples.items()}}


async def run(
    dbs: Databases, cfg: Config, prefix: str, log: Callable[[str], None]
) -> dict[str, Any]:
    checks = _Checks()
    out: dict[str, Any] = {"sizes": list(cfg.rest_sizes)}
    out["service"] = await _service(dbs, cfg, prefix, checks)
    s = out["service"]
    log(
        f"REST service save N={s['size']} fresh input: ours {s['ours']['median_ms']:.2f} ms"
        f", floor (append + compare) {s['floor']['median_ms']:.2f} ms"
    )
    await asyncio.gather(
        aerich_upgrade(dbs.urls["rest_ours"]), aerich_upgrade(dbs.urls["rest_floor"])
    )
    ours_env = {
        "AGENT_RUNTIME__DB_URL": dbs.urls["rest_ours"],
        "AGENT_RUNTIME__LOG_LEVEL": "warning",
    }
    floor_env = {ENV_URL: dbs.urls["rest_floor"]}
    async with (
        serve("agent_runtime.main:app", ours_env, "REST workload (ours)") as ours,
        serve("benchmarks.http_floor:app", floor_env, "REST workload (floor)") as floor,
    ):
        servers = [_Server("ours", ours), _Server("floor", floor)]
        try:
            await _semantics(servers, prefix, checks)
            post: dict[str, dict[str, Any]] = {name: {} for name in SERVERS}
            get: dict[str, dict[str, Any]] = {name: {} for name in SERVERS}
            for n in cfg.rest_sizes:
                seq = await _sequential(servers, n, cfg, prefix, checks)
                for name in SERVERS:
                    post[name][str(n)] = seq["post"][name]
                    get[name][str(n)] = seq["get"][name]
                    out["gc"] = {name: {"size": n, **seq["gc"][name]} for name in SERVERS}
                p50 = {
                    f"{method} {name}": seq[method][name]["p50_ms"]
                    for method in ("post", "get")
                    for name in SERVERS
                }
                log(f"REST N={n:<5} p50 ms: " + ", ".join(f"{k} {v:.2f}" for k, v in p50.items()))
            out["post"], out["get"] = post, get
        finally:
            for server in servers:
                await server.conn.close()
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
        for r in range(cfg.rest_rounds):
            for server in servers:
                if any(not run["requests_per_s"] for run in rounds[server.name]):
                    continue  # wedged in an earlier round
                result = await _concurrent(server, cfg, f"{prefix}-c{r}", checks)
                rounds[server.name].append(result)
                log(
                    f"REST {cfg.rest_clients} clients, {server.name}: "
                    f"{result['requests_per_s'] or 0:.0f} req/s (errors {result.get('errors')})"
                )
        if checks.problems:  # the servers' own account of what went wrong, in the JSON
            out["server_log_tails"] = {s.name: s.served.log_tail() for s in servers}
    out["concurrent"] = {}
    for name, runs in rounds.items():
        requests = sum(r["requests"] for r in runs)
        seconds = sum(r["seconds"] for r in runs)
        out["concurrent"][name] = {
            "clients": cfg.rest_clients,
            "requests_per_s": requests / seconds if seconds else None,
            "errors": sum(r.get("errors", r["clients"]) for r in runs),
            "rounds": runs,
        }
    out["floor_json"] = FLOOR_JSON
    out["problems"] = checks.problems
    return out
