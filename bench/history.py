"""The history of the `aged` scenario: millions of finished deliveries, each with its
delivery_attempts row, made in-process by taskhook's own functions on its own SQL.

Not through HTTP: the API creates about a thousand tasks a second on this machine's two
cores (the `task_creation` figure of every scenario), so two million would take over half
an hour before the first delivery. Each chunk of 1,000 tasks goes through the functions
the service runs instead, only without HTTP in between (three chunks at once):

  1. create: `taskhook.core.tasks.create_task` for each task (what POST /v1/task/<type> runs:
     the body's validation, the project's defaults, the row's values), given a recorder
     instead of a connection, which answers the project lookup from the project row read
     once and keeps the named query insert_task with its arguments; the chunk's inserts
     then run as one `executemany` of that query in one transaction (run one by one, with
     a round trip and a savepoint per task, they were 15x slower: 1,300/s against 20,000).
     The project is made first with `taskhook.core.store.insert_project` (POST /v1/projects);
  2. complete: `taskhook.core.events.parse_events` + `taskhook.core.events.apply_groups` inside
     `taskhook.core.store.generic_plans_transaction` (what a 1,000-event group commit of
     POST /v1/events runs: lock_tasks_and_claim_events, complete_tasks, enqueue_deliveries,
     so each task gets its ingested_events row, its delivery and its callback body);
  3. deliver: `taskhook.core.store.claim_deliveries` on a connection with db.CLAIM_SETTINGS (the
     dispatcher's claim) and `taskhook.core.store.record_attempts` in batches of 500 (its
     outcome writer; the SQL function taskhook_record_attempts). Nothing is sent: each
     attempt is recorded as an HTTP 200 that took 1 ms.

So every row is one the product writes, through the statements it runs; the timestamps
are those of the build (minutes old), far inside the retention period
(TASKHOOK_RETENTION_DAYS, 30 days), so the dispatcher's prune keeps all of it and no
setting needs to change. The callback URLs are the sink's /old/ route, never called.

    python -m bench.history --n 20000      # the build alone, on its own PostgreSQL: rates
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench import common

HISTORY_PROJECT = "bench-history"
CHUNK = 1000  # tasks per transaction (and events per group: MAX_GROUP_EVENTS)
WORKERS = 3  # pipelines at once (2 and 4 were slower on 2 cores)
OUTCOME_BATCH = 500  # outcomes per record_attempts (the dispatcher's MAX_BATCH)
CLAIM_LEASE_S = 600.0  # the build's leases outlive any pause of the build


@dataclass
class _Stage:
    seconds: float = 0.0
    rows: int = 0

    def add(self, began: float, rows: int) -> None:
        self.seconds += time.perf_counter() - began
        self.rows += rows


@dataclass
class _Build:
    stages: dict[str, _Stage] = field(
        default_factory=lambda: {k: _Stage() for k in ("create", "complete", "deliver")}
    )
    next: int = 0
    delivered: int = 0


def _task_body(route: str, ref: str, g: int) -> dict[str, Any]:
    return {
        "project": HISTORY_PROJECT,
        "instruction": common.INSTRUCTION,
        "callback_url": f"{route}{ref}{g:08x}",
        "metadata": {"index": g, "source": "bench-history"},
        **common.PARAMS,
    }


def _event(tid: str, g: int, ref: str) -> dict[str, Any]:
    return {
        "event_id": f"evt-hist-{ref}{g:08x}",
        "type": "task.completed",
        "task_id": tid,
        "occurred_at": datetime.now(UTC).isoformat(),
        "response": common.RESPONSE,
    }


class _Recorder:
    """What `taskhook.core.tasks.create_task` gets instead of a connection: the project lookup
    answers from the row read once, and the insert_task it would run (one round trip and
    a savepoint per task) is kept, to be run for the whole chunk in one executemany."""

    def __init__(self, project: asyncpg.Record) -> None:
        from taskhook.core.store.queries import queries

        self._project = project
        self._insert, self._get_project = queries["insert_task"], queries["get_project"]
        self.rows: list[tuple[Any, ...]] = []

    def transaction(self) -> _NoTransaction:
        return _NoTransaction()

    async def fetchrow(self, query: str, *args: Any) -> Any:
        if query == self._get_project:
            return self._project
        if query == self._insert:
            self.rows.append(args)
            return {"id": args[0]}
        raise RuntimeError("history: create_task ran a query the recorder does not know")


class _NoTransaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Builder:
    """The build's connections and figures; its methods are the three stages."""

    def __init__(self, dsn: str, account_id: str, route: str, data_dir: str) -> None:
        # Imported here: no other bench module needs taskhook's code in its process.
        from taskhook.core import accounts, secretbox
        from taskhook.core.settings import load_settings

        self.dsn, self.route = dsn, route
        self.settings = load_settings(
            database_url=dsn, data_dir=data_dir, allow_private_targets=True, log_level="warning"
        )
        self.box = secretbox.load_or_create(self.settings)  # the one the CLI made
        self.who = accounts.Principal(account_id, "bench", False, None)
        self.ref = f"h{int(time.time()) % 100000:05d}-"
        self.state = _Build()
        self.pool: asyncpg.Pool | None = None
        self.project: asyncpg.Record | None = None

    async def open(self, workers: int) -> list[asyncpg.Connection]:
        from taskhook.core import db, secretbox, store

        self.pool = await db.create_pool(self.dsn, min_size=workers, max_size=2 * workers)
        async with self.pool.acquire() as conn:
            await secretbox.bind(conn, self.box)
            await store.insert_project(
                conn, self.who, HISTORY_PROJECT, common.TASK_TYPE, [], False, False, None
            )
            self.project = await store.get_project(conn, self.who, HISTORY_PROJECT)
        return [await db.connect(self.dsn, db.CLAIM_SETTINGS) for _ in range(workers)]

    async def create(self, first: int, last: int) -> list[str]:
        from taskhook.core import tasks
        from taskhook.core.store.queries import queries

        assert self.pool is not None and self.project is not None
        began = time.perf_counter()
        recorder = _Recorder(self.project)
        for g in range(first, last):
            body = _task_body(self.route, self.ref, g)
            await tasks.create_task(
                recorder,  # type: ignore[arg-type]
                self.who,
                common.TASK_TYPE,
                body,
                self.settings,
            )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(queries["insert_task"], recorder.rows)
        self.state.stages["create"].add(began, len(recorder.rows))
        return [r[0] for r in recorder.rows]

    async def complete(self, ids: list[str], first: int) -> None:
        from taskhook.core import events, store

        assert self.pool is not None
        began = time.perf_counter()
        evs = events.parse_events([_event(t, first + k, self.ref) for k, t in enumerate(ids)])
        async with self.pool.acquire() as conn, store.generic_plans_transaction(conn):
            results = await events.apply_groups(conn, [evs])
        applied = sum(r["status"] == "applied" for r in results[0])
        if applied != len(ids):
            raise RuntimeError(f"history: {len(ids) - applied} completions not applied")
        self.state.stages["complete"].add(began, applied)

    async def deliver(self, claim_conn: asyncpg.Connection, want: int) -> int:
        from taskhook.core import store
        from taskhook.core.delivery import AttemptResult, Outcome
        from taskhook.dispatcher.claims import claim_deliveries

        assert self.pool is not None
        began = time.perf_counter()
        claimed = await claim_deliveries(claim_conn, self.box, want, CLAIM_LEASE_S, want)
        result = AttemptResult(datetime.now(UTC), 1, Outcome(status_code=200), "")
        records = [store.AttemptRecord(d, "succeeded", None, result) for d in claimed]
        for k in range(0, len(records), OUTCOME_BATCH):
            batch = records[k : k + OUTCOME_BATCH]
            if len(await store.record_attempts(self.pool, batch)) != len(batch):
                raise RuntimeError("history: a lease of the build was lost")
        self.state.stages["deliver"].add(began, len(claimed))
        self.state.delivered += len(claimed)
        return len(claimed)

    async def close(self, claim_conns: list[asyncpg.Connection]) -> None:
        for c in claim_conns:
            await c.close()
        if self.pool is not None:
            await self.pool.close()


async def build(
    dsn: str,
    account_id: str,
    n: int,
    route: str,
    data_dir: str,
    *,
    workers: int = WORKERS,
    progress_every_s: float = 30.0,
) -> dict[str, Any]:
    """Make `n` completed tasks whose one delivery succeeded at its first attempt; their
    callback URLs are `route` + a reference (never called: nothing is sent). Returns the
    time it took and the rate of each stage."""
    b = _Builder(dsn, account_id, route, data_dir)
    state = b.state
    claim_conns = await b.open(workers)

    async def worker(w: int) -> None:
        while state.next < n:
            first = state.next
            last = state.next = min(n, first + CHUNK)
            ids = await b.create(first, last)
            await b.complete(ids, first)
            await b.deliver(claim_conns[w], last - first)

    async def report() -> None:
        while True:
            await asyncio.sleep(progress_every_s)
            print(
                f"  history: {state.delivered:,} of {n:,} delivered after "
                f"{time.perf_counter() - began:.0f} s",
                flush=True,
            )

    began = time.perf_counter()
    reporter = asyncio.create_task(report())
    try:
        await asyncio.gather(*(worker(w) for w in range(workers)))
        # A claim may have taken another worker's rows; what is left is due now.
        for _ in range(n // CHUNK + 10):
            if state.delivered >= n or not await b.deliver(claim_conns[0], CHUNK):
                break
    finally:
        reporter.cancel()
        await b.close(claim_conns)
    elapsed = time.perf_counter() - began
    return {
        "n": n,
        "delivered": state.delivered,
        "seconds": round(elapsed, 1),
        "per_s": round(state.delivered / max(elapsed, 1e-9), 1),
        "workers": workers,
        "chunk": CHUNK,
        # Busy seconds of each stage summed over the workers, and its rows per such second.
        "stages": {
            k: {"busy_s": round(s.seconds, 1), "rows_per_busy_s": round(s.rows / s.seconds, 1)}
            for k, s in state.stages.items()
            if s.seconds
        },
    }


async def _standalone(args: argparse.Namespace) -> dict[str, Any]:
    import base64
    import secrets

    from bench import seed, service

    pg = await asyncio.to_thread(service.Postgres)
    try:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        db = await seed.prepare(pg, "bench_history", secret)
        return await build(
            db.dsn, db.account_id, args.n, "http://127.0.0.1:9/old/", str(service.DATA_DIR),
            workers=args.workers, progress_every_s=10,
        )  # fmt: skip
    finally:
        await asyncio.to_thread(pg.close)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=WORKERS)
    args = parser.parse_args()
    common.install_uvloop()
    print(json.dumps(asyncio.run(_standalone(args)), indent=1))


if __name__ == "__main__":
    main()
