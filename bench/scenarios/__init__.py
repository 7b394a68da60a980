"""The scenarios, in run order, and what each one needs from the run.

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
    """Sizes and durations of one run (defaults: ~40 minutes; --quick: ~8)."""

    quick: bool = False
    ceiling_s: float = 5.0
    http_concurrency: tuple[int, ...] = (1, 16, 64)
    pg_concurrency: tuple[int, ...] = (1, 16, 64)
    pg_batch_concurrency: tuple[int, ...] = (1, 4)
    ingest_s: float = 5.0
    ingest_concurrency: tuple[int, ...] = (1, 16, 64)
    ingest_batch: int = 100
    create_concurrency: int = 32  # POST /v1/task requests in flight while tasks are made
    drain_sizes: tuple[int, ...] = (20_000, 100_000)  # one drain per size, each on a fresh db
    drain_batch: int = 100  # events per POST /v1/events while the drain's queue fills
    drain_in_flight: int = 4  # such requests at once
    drain_timeout_s: float = 120.0
    rates: tuple[int, ...] = (250, 500, 1000, 1500, 2000, 3000)
    step_s: float = 10.0
    settle_s: float = 10.0  # after each open-loop window, for the stragglers
    check_timeout_s: float = 60.0  # for every callback to resolve before the final check
    neighbour_rate: int | None = None  # None: the end-to-end headline (or 1000)
    neighbour_s: float = 15.0
    held_rate: int = 300  # events/s of the held-snapshot scenario
    held_s: float = 300.0  # its length
    held_window_s: float = 30.0  # its figures per window of this length
    held_from_s: float = 60.0  # the REPEATABLE READ snapshot is held from here ...
    held_until_s: float = 240.0  # ... to here (seconds into the load)
    aged_deliveries: int = 2_000_000  # finished deliveries (with attempts) before the ladder
    soak_minutes: float = 30.0
    soak_rate: int = 1000
    soak_window_s: float = 60.0
    # Soak tasks are all made before the load if that takes at most this long (estimated
    # from the first window's); else the world makes them beside the load, ahead of it.
    soak_precreate_max_s: float = 300.0
    service_env: dict[str, str] = field(default_factory=dict)


QUICK = {
    "quick": True,
    "ceiling_s": 2.0,
    "ingest_s": 2.0,
    "drain_sizes": (20_000,),
    "drain_timeout_s": 60.0,
    "step_s": 3.0,
    "settle_s": 5.0,
    "check_timeout_s": 30.0,
    "neighbour_s": 5.0,
    "held_s": 60.0,
    "held_window_s": 10.0,
    "held_from_s": 10.0,
    "held_until_s": 50.0,
    "aged_deliveries": 200_000,
}


@dataclass
class Context:
    plan: Plan
    pg: Postgres
    world: World
    logs: Path
    secret: str
    results: dict[str, Any]
    created: list[dict[str, Any]] = field(default_factory=list)  # this scenario's creates

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

    async def ensure_project(self, db: seed.Database, procs: list[Taskhook]) -> None:
        if not db.project_made:
            await seed.create_project(api_urls(procs)[0], db.live_key)
            db.project_made = True

    async def create_tasks(
        self,
        db: seed.Database,
        procs: list[Taskhook],
        count: int,
        routes: list[str],
        prefix: str | None = None,
    ) -> str:
        """`count` pending live tasks made through the API by the world (outside any timed
        window), task g calling back routes[g % 10] + its reference; the set's prefix."""
        await self.ensure_project(db, procs)
        prefix = prefix or seed.new_prefix()
        stats = await self.world.call(
            "create_tasks",
            120 + count / 100,
            urls=api_urls(procs),
            key=db.live_key,
            prefix=prefix,
            count=count,
            routes=routes,
            concurrency=self.plan.create_concurrency,
        )
        stats.pop("ids", None)
        self.created.append(stats)
        return prefix

    def creation_summary(self) -> dict[str, Any] | None:
        """Tasks made through the API in this scenario, and at what rate (a side figure)."""
        if not self.created:
            return None
        tasks = sum(c["tasks"] for c in self.created)
        seconds = sum(c["seconds"] for c in self.created)
        errors: dict[str, int] = {}
        for c in self.created:
            for k, v in c.get("errors", {}).items():
                errors[k] = errors.get(k, 0) + v
        return {
            "tasks": tasks,
            "seconds": round(seconds, 1),
            "tasks_per_s": round(tasks / seconds, 1) if seconds else None,
            "concurrency": self.plan.create_concurrency,
            "retried": errors,
        }


def api_urls(procs: list[Taskhook]) -> list[str]:
    """Base URLs of the processes that serve the API (serve, receivers)."""
    return [p.url for p in procs if p.port is not None]


async def wait_queue_empty(conn: asyncpg.Connection, timeout: float) -> float | None:
    """Seconds until no delivery is pending or sending; None if it never happened."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if await seed.queue_depth(conn) == 0:
            return time.monotonic() - began
        await asyncio.sleep(0.2)
    return None
