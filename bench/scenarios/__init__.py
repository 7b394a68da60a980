"""The scenarios of issue 6, in run order, and what each one needs from the run.

Each scenario is `async def run(ctx) -> dict` and gets a fresh database; the embedded
PostgreSQL and the world process (load generator + sink) live for the whole run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench import seed
from bench.service import CpuMeter, Postgres, Taskhook, taskhook_env
from bench.worldctl import World


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run (defaults: ~10 minutes; --quick: ~2)."""

    quick: bool = False
    ceiling_s: float = 5.0
    http_concurrency: tuple[int, ...] = (1, 16, 64)
    pg_concurrency: tuple[int, ...] = (1, 16, 64)
    pg_batch_concurrency: tuple[int, ...] = (1, 4)
    ingest_s: float = 5.0
    ingest_concurrency: tuple[int, ...] = (1, 16, 64)
    ingest_batch: int = 100
    drain_n: int = 100_000
    drain_timeout_s: float = 120.0
    rates: tuple[int, ...] = (250, 500, 1000, 1500, 2000, 3000)
    step_s: float = 10.0
    settle_s: float = 10.0  # after each open-loop window, for the stragglers
    check_timeout_s: float = 60.0  # for every callback to resolve before the final check
    neighbour_rate: int | None = None  # None: the end-to-end headline (or 1000)
    neighbour_s: float = 15.0
    service_env: dict[str, str] = field(default_factory=dict)


QUICK = {
    "quick": True,
    "ceiling_s": 2.0,
    "ingest_s": 2.0,
    "drain_n": 20_000,
    "drain_timeout_s": 60.0,
    "step_s": 3.0,
    "settle_s": 5.0,
    "check_timeout_s": 30.0,
    "neighbour_s": 5.0,
}


@dataclass
class Context:
    plan: Plan
    pg: Postgres
    world: World
    logs: Path
    secret: str
    results: dict[str, Any]

    def env(self, dsn: str) -> dict[str, str]:
        return taskhook_env(dsn, self.secret, self.plan.service_env)

    async def database(self, name: str) -> seed.Database:
        return await seed.prepare(self.pg, f"bench_{name}", self.secret)

    def meter(self, procs: list[Taskhook], **extra: Any) -> CpuMeter:
        """CPU of PostgreSQL, the world and each taskhook process (by its name)."""
        sources = {"postgres": self.pg.cpu_seconds, "world": self.world.cpu_seconds}
        sources.update({p.name: p.cpu_seconds for p in procs})
        sources.update(extra)
        return CpuMeter(sources)


async def wait_queue_empty(conn: asyncpg.Connection, timeout: float) -> float | None:
    """Seconds until no delivery is pending or sending; None if it never happened."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if await seed.queue_depth(conn) == 0:
            return time.monotonic() - began
        await asyncio.sleep(0.2)
    return None
