"""Scenario 5, the ceilings: bare loops (bench/ceilings.py) on the same sink and the same
PostgreSQL, each in its own process, so taskhook's figures can be printed as ratios."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from bench import seed
from bench.scenarios import Context
from bench.service import REPO

PG_TASKS = 60_000  # reused cyclically by the bare write loop


async def run(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    out: dict[str, Any] = {"http": [], "pg_single": [], "pg_batch": []}
    for c in plan.http_concurrency:
        args = ["http", "--url", ctx.world.sink("ceil")]
        out["http"].append(await _loop(ctx, args, c))
    db = await ctx.database("ceilings")
    conn = await db.connect()
    try:
        prefix, route = seed.new_prefix(), ctx.world.sink("cb")
        await seed.insert_ceiling_rows(conn, db, prefix, PG_TASKS, route)
        await conn.execute("VACUUM ANALYZE tasks")
    finally:
        await conn.close()
    common = ["pg", "--dsn", db.dsn, "--account", db.account_id, "--prefix", prefix]
    common += ["--route", route, "--tasks", str(PG_TASKS)]
    for c in plan.pg_concurrency:
        out["pg_single"].append(await _loop(ctx, [*common, "--batch", "1"], c))
    for c in plan.pg_batch_concurrency:
        batch = str(plan.ingest_batch)
        out["pg_batch"].append(await _loop(ctx, [*common, "--batch", batch], c))
    return out


async def _loop(ctx: Context, args: list[str], concurrency: int) -> dict[str, Any]:
    """Run one bare loop in its own process; its figures plus everyone's CPU."""
    args = [*args, "--concurrency", str(concurrency), "--duration", str(ctx.plan.ceiling_s)]
    meter = ctx.meter([])
    meter.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.ceilings",
        *args,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), ctx.plan.ceiling_s + 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    cpu = meter.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.ceilings {args[0]} failed: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    cpu["cpu_s"]["loop"] = result.pop("client_cpu_s")
    return {**result, "cpu": cpu}
