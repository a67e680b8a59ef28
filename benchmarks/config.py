"""Sizes and time budgets of the two modes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    mode: str
    sizes: tuple[int, ...]  # existing messages before a timed save / load
    save_seconds: float  # timed work per (implementation, N); see stats.Budget
    load_seconds: float
    approval_seconds: float
    warmup: int  # untimed operations before each timed series
    min_reps: int
    max_reps: int
    clients: int  # concurrent clients, each with its own session
    client_start: int  # messages in each client's session before the run
    concurrency_seconds: float
    grace_seconds: float  # after the deadline, how long to wait for an operation in flight
    http_connections: int
    http_seconds: float
    # `rest`: ours vs the HTTP floor (benchmarks/http_floor.py), two uvicorn servers
    rest_sizes: tuple[int, int]  # (small, large) existing messages, sequential POST / GET
    rest_samples: int  # timed requests per (server, size, method)
    rest_clients: int
    rest_client_start: int  # messages in each concurrent client's session
    rest_seconds: float  # per concurrent run (one server at a time)
    rest_rounds: int  # concurrent runs per server, alternating ours, floor, ours, ...
    rest_service_size: int  # existing messages for the service-level save
    rest_service_samples: int
    # `hitl`: waits parked on uvicorn servers, decided from another server process
    hitl_waiters: int  # parked waits decided one at a time (decision-to-wake latency)
    hitl_memory_waiters: tuple[int, ...]  # parked waits on one worker, per fresh server (RSS)
    # `pooler`: PostgreSQL directly vs through PgBouncer, uvicorn instances of 2 workers
    pooler_modes: tuple[str, ...]  # see benchmarks/workloads/pooler.py
    pooler_instances: tuple[int, ...]
    pooler_clients: tuple[int, ...]  # concurrent clients, one run each per instance count
    pooler_seconds: float  # per run
    # `writers`: writers on distinct sessions over REST, and the open-transaction probe
    writers_clients: int  # concurrent writers, each on its own session
    writers_seconds: float  # per run (one tree's servers at a time)
    writers_rounds: int  # runs per (setup, tree), alternating the trees
    writers_setups: tuple[tuple[str, int, int], ...]  # (direct | pgbouncer, instances, workers)
    probe_hold_seconds: float  # how long A's transaction stays open
    probe_samples: int  # baseline rounds of the four operations, nothing open
    probe_rounds: int  # probe runs per tree, alternating
    # `langgraph`: AgentRuntimeSaver vs LangGraph's own saver, a 40-step graph per run
    langgraph_samples: int  # timed runs per saver, alternating (after `warmup` runs each)


FULL = Config(
    mode="full",
    sizes=(10, 100, 1000, 10000),
    save_seconds=3.0,
    load_seconds=2.0,
    approval_seconds=3.0,
    warmup=3,
    min_reps=5,
    max_reps=600,
    clients=64,
    client_start=20,
    concurrency_seconds=10.0,
    grace_seconds=30.0,
    http_connections=64,
    http_seconds=10.0,
    rest_sizes=(10, 1000),
    rest_samples=150,
    rest_clients=32,
    rest_client_start=100,
    rest_seconds=10.0,
    rest_rounds=2,
    rest_service_size=10000,
    rest_service_samples=40,
    hitl_waiters=300,
    hitl_memory_waiters=(1000, 5000),
    pooler_modes=("direct", "nocache", "pgbouncer"),
    pooler_instances=(1, 2),
    pooler_clients=(64, 256),
    pooler_seconds=10.0,
    writers_clients=32,
    writers_seconds=5.0,
    writers_rounds=3,
    writers_setups=(("direct", 1, 1), ("direct", 1, 2), ("direct", 1, 4), ("pgbouncer", 2, 2)),
    probe_hold_seconds=3.0,
    probe_samples=20,
    probe_rounds=2,
    langgraph_samples=60,
)

SMOKE = Config(
    mode="smoke",
    sizes=(10, 100),
    save_seconds=0.1,
    load_seconds=0.1,
    approval_seconds=0.1,
    warmup=1,
    min_reps=2,
    max_reps=5,
    clients=64,
    client_start=10,
    concurrency_seconds=1.5,
    grace_seconds=10.0,
    http_connections=64,
    http_seconds=1.5,
    rest_sizes=(10, 1000),
    rest_samples=30,
    rest_clients=32,
    rest_client_start=20,
    rest_seconds=2.0,
    rest_rounds=1,
    rest_service_size=1000,
    rest_service_samples=5,
    hitl_waiters=20,
    hitl_memory_waiters=(50,),
    pooler_modes=("direct", "pgbouncer"),
    pooler_instances=(1,),
    pooler_clients=(32,),
    pooler_seconds=1.0,
    writers_clients=16,
    writers_seconds=1.0,
    writers_rounds=1,
    writers_setups=(("direct", 1, 1),),
    probe_hold_seconds=0.5,
    probe_samples=3,
    probe_rounds=1,
    langgraph_samples=3,
)
