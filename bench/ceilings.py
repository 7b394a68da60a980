"""The bare ceilings taskhook is compared with, each a closed loop in its own process:

  python -m bench.ceilings http --url URL --concurrency C --duration S
      aiohttp POSTs of a signed ~1.5 KB callback body to the world's sink, no database.
  python -m bench.ceilings pg --dsn DSN --account A --prefix P --tasks N --route URL
                              --batch B --concurrency C --duration S
      asyncpg doing taskhook's writes per event, no HTTP: in one transaction, UPDATE the
      task to completed and INSERT its delivery (B=1), or the same for B events at once
      with unnest (B=100), one connection per worker.

Each prints one JSON line: rates, latency percentiles and its own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from standardwebhooks.webhooks import Webhook

from bench import common

CALLBACK_SECRET = "whsec_" + "YmVuY2gtY2FsbGJhY2stc2lnbmluZy1zZWNyZXQ="  # any valid secret
_UPDATE_ONE = """
UPDATE tasks SET status = 'completed', response = $2::jsonb,
       completed_at = coalesce(completed_at, now()), updated_at = clock_timestamp(),
       customer_review_status = 'pending', callback_succeeded = NULL
WHERE id = $1 RETURNING *
"""
_INSERT_ONE = """
WITH d AS (
    INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id)
    VALUES ($1, $2, 'completed', $3 || $1, '127.0.0.1', $5)
    RETURNING id
)
INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, $4::text FROM d
"""
_UPDATE_MANY = """
UPDATE tasks SET status = 'completed', response = $2::jsonb,
       completed_at = coalesce(completed_at, now()), updated_at = clock_timestamp(),
       customer_review_status = 'pending', callback_succeeded = NULL
FROM unnest($1::text[]) AS u(id) WHERE tasks.id = u.id
"""
_INSERT_MANY = """
WITH u AS (
    SELECT * FROM unnest($1::text[], $4::text[], $5::text[]) AS u(id, payload, webhook_id)
), d AS (
    INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id)
    SELECT u.id, $2, 'completed', $3 || u.id, '127.0.0.1', u.webhook_id FROM u
    RETURNING id, webhook_id
)
INSERT INTO delivery_payloads (delivery_id, payload)
SELECT d.id, u.payload FROM d JOIN u USING (webhook_id)
"""

Op = Callable[[int], Awaitable[int]]  # one operation of worker-local sequence n: events done


async def _closed_loop(ops: list[Op], duration: float, events_per_op: int) -> dict[str, Any]:
    latencies: list[float] = []
    done = {"ops": 0, "events": 0}
    deadline = time.perf_counter() + duration

    async def worker(op: Op) -> None:
        n = 0
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            events = await op(n)
            done["events"] += events  # after the await: `+= await` would lose updates
            latencies.append(time.perf_counter() - began)
            done["ops"] += 1
            n += 1

    cpu0, began = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(op) for op in ops))
    elapsed = time.perf_counter() - began
    return {
        "concurrency": len(ops),
        "events_per_op": events_per_op,
        "elapsed_s": round(elapsed, 3),
        "ops_per_s": round(done["ops"] / elapsed, 1),
        "events_per_s": round(done["events"] / elapsed, 1),
        "client_cpu_s": round(time.process_time() - cpu0, 3),
        **common.latency_summary(latencies),
    }


async def http_loop(url: str, concurrency: int, duration: float) -> dict[str, Any]:
    template = common.callback_template()
    webhook = Webhook(CALLBACK_SECRET)
    counter = iter(range(10**12))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:

        async def post(_n: int) -> int:
            key = f"{next(counter):024x}"
            body = template.replace(common.TASK_ID_MARK, key)
            now, msg_id = datetime.now(UTC), "msg_" + key
            headers = {
                "Content-Type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": webhook.sign(msg_id, now, body),
            }
            async with session.post(url + key, data=body.encode(), headers=headers) as resp:
                await resp.read()
                return 1 if resp.status == 200 else 0

        return await _closed_loop([post] * concurrency, duration, 1)


async def pg_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Worker w of C uses tasks w, w+C, ... (B=1) or blocks w, w+C, ... of B tasks, cycling
    through the seeded tasks, so no two workers ever wait for the same row lock."""
    conns = [await asyncpg.connect(args.dsn) for _ in range(args.concurrency)]
    template, blocks = common.callback_template(), args.tasks // args.batch
    serial = iter(range(10**12))

    def op_for(w: int, conn: asyncpg.Connection) -> Op:
        async def op(n: int) -> int:
            block = (w + n * args.concurrency) % blocks
            tids = [common.ref(args.prefix, block * args.batch + k) for k in range(args.batch)]
            payloads = [template.replace(common.TASK_ID_MARK, t) for t in tids]
            hooks = [f"msg_ceiling_{next(serial)}" for _ in tids]
            async with conn.transaction():
                if args.batch == 1:
                    await conn.fetchrow(_UPDATE_ONE, tids[0], common.RESPONSE_JSON)
                    await conn.execute(
                        _INSERT_ONE, tids[0], args.account, args.route, payloads[0], hooks[0]
                    )
                else:
                    await conn.execute(_UPDATE_MANY, tids, common.RESPONSE_JSON)
                    await conn.execute(
                        _INSERT_MANY, tids, args.account, args.route, payloads, hooks
                    )
            return len(tids)

        return op

    try:
        return await _closed_loop(
            [op_for(w, c) for w, c in enumerate(conns)], args.duration, args.batch
        )
    finally:
        await asyncio.gather(*(c.close() for c in conns))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ceilings", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    http = sub.add_parser("http")
    http.add_argument("--url", required=True)
    pg = sub.add_parser("pg")
    for name in ("--dsn", "--account", "--prefix", "--route"):
        pg.add_argument(name, required=True)
    pg.add_argument("--tasks", type=int, required=True)
    pg.add_argument("--batch", type=int, default=1)
    for p in (http, pg):
        p.add_argument("--concurrency", type=int, default=16)
        p.add_argument("--duration", type=float, default=5.0)
    return parser


def main() -> None:
    args = _parser().parse_args()
    common.install_uvloop()
    if args.kind == "http":
        result = asyncio.run(http_loop(args.url, args.concurrency, args.duration))
    else:
        result = asyncio.run(pg_loop(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
