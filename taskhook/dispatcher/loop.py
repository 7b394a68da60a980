"""The delivery loop: claim due callbacks, send each without holding a connection, record.

One loop claims in batches (FOR UPDATE SKIP LOCKED, under a lease) as long as it has free
slots; each claimed delivery runs as its own asyncio task. A NOTIFY wakes the loop when new
work is enqueued; a poll every `poll_interval` is the guarantee. Per-host in-flight counts
keep a slow host from filling every slot: hosts at their cap are left out of the claim.

While a backlog lasts (the last claim took all it asked for), the next claim runs beside
the one being awaited, on a second connection: a claim under load spends most of its time
waiting its turns (in PostgreSQL and in this busy event loop), so one claim at a time
would cap the callbacks a second however fast the sends were.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Awaitable

import aiohttp
import asyncpg

from taskhook.core import metrics, secretbox, store
from taskhook.core.db import DATABASE_DOWN
from taskhook.core.delivery import AttemptResult, Claimed
from taskhook.core.logs import get_logger
from taskhook.core.retry import host_pause, next_delay
from taskhook.core.secretbox import SecretBox
from taskhook.core.settings import Settings
from taskhook.core.smtp import SmtpConfig
from taskhook.core.targets import VettingResolver
from taskhook.dispatcher import batch_callbacks
from taskhook.dispatcher.claims import ClaimConnection, ClaimRun, claim_deliveries, reserve
from taskhook.dispatcher.held import Held
from taskhook.dispatcher.listener import Listener
from taskhook.dispatcher.outcomes import OutcomeWriter
from taskhook.dispatcher.sender import SendConfig, send

log = get_logger("taskhook.dispatcher")
CLAIM_ERROR_BACKOFF = 1.0  # seconds to wait after a failed claim (database down)
# Claims scan from their window's marks (store.ClaimWindow); this often a sweep beside
# them scans everything, for rows another program made due at an earlier time.
CLAIM_SWEEP_INTERVAL = 60.0
# Outcomes that no retry can change: give up at once.
_FINAL_ERRORS = frozenset({"forbidden_target", "smtp_not_configured", "smtp_rejected"})


async def _wait_any(*aws: Awaitable[object], seconds: float) -> None:
    """Return when the first of `aws` completes, or after `seconds`."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def _context(d: Claimed) -> dict[str, object]:
    """The fields that tie a delivery's log lines together. Passed to each line, not bound
    as context variables: binding them cost more per callback than the lines at the usual
    levels (most are below the level and cost nothing). webhook_id is what the customer
    sees, so a "we never got msg_..." is found by it."""
    return {
        "delivery_id": d.id,
        "webhook_id": d.webhook_id,
        "task_id": d.task_id,
        "attempt": d.attempt,
        "host": d.host,
    }


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, dsn: str, settings: Settings) -> None:
        self.pool, self.settings = pool, settings
        self.box: SecretBox | None = None  # account secrets' key, checked when run starts
        self.listener = Listener(dsn, settings.poll_interval)
        self.claim_conns = (ClaimConnection(dsn), ClaimConnection(dsn))
        self.next_claim: ClaimRun | None = None  # the claim running beside the awaited one
        self.claim_window = store.ClaimWindow()
        self.backlog = False  # the last claim took all it asked for
        smtp = (
            SmtpConfig.from_url(settings.smtp_url, settings.smtp_from)
            if settings.smtp_url
            else None
        )
        self.send_config = SendConfig(
            settings.connect_timeout,
            settings.total_timeout,
            settings.max_response_bytes,
            settings.allow_private_targets,
            smtp,
        )
        self.in_flight: set[asyncio.Task[None]] = set()  # until the outcome is written
        self.sending = 0  # deliveries whose HTTP exchange (or mail) is under way
        self.per_host: Counter[str] = Counter()
        # Claimed ahead (held.py): up to two more caps per host, two more claims in all
        # (one held, one in flight beside the awaited claim), as long as a row held that
        # long still has a whole attempt's time left on its lease. Without claim-ahead every
        # claimed row fits a free slot and starts at once, and claims run one at a time.
        hold_limit = settings.lease_seconds - settings.total_timeout
        self.ahead = hold_limit > 0
        self.held = Held(hold_limit if self.ahead else math.inf)
        caps_ahead = 2 if self.ahead else 0
        self.claim_cap = settings.per_host_concurrency * (1 + caps_ahead)
        self.window = settings.dispatch_concurrency + settings.claim_batch * caps_ahead
        self.slot_freed = asyncio.Event()  # set once `refill_at` slots freed since a claim
        self.freed = 0
        # Claiming again for every freed slot costs a claim (a round trip, and a turn of an
        # event loop busy with callbacks) per callback and starves the pipeline: a claim
        # waits for a quarter of the room, while the other three quarters are still sent.
        self.refill_at = max(
            1,
            min(settings.per_host_concurrency, settings.claim_batch, settings.dispatch_concurrency)
            // 4,
        )
        self.heartbeat = time.monotonic()
        self.session: aiohttp.ClientSession | None = None
        self.outcomes: OutcomeWriter | None = None

    def seconds_since_heartbeat(self) -> float:
        return time.monotonic() - self.heartbeat

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then drain in-flight callbacks (bounded by grace)."""
        connector = aiohttp.TCPConnector(
            resolver=VettingResolver(self.settings.allow_private_targets), limit=0
        )
        # No cookie jar: a webhook sender keeps no session with its customers (a cookie one
        # endpoint set would otherwise go back with every later callback to that host).
        jar = aiohttp.DummyCookieJar()
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as self.session:
            self.box = await self._open_box(stop)
            if self.box is None:  # stopped while the database was down
                return
            self.outcomes = OutcomeWriter(self.pool)
            listening = asyncio.create_task(self.listener.run(stop))
            pruning = asyncio.create_task(self._prune_periodically(stop))
            sweeping = asyncio.create_task(self._sweep_periodically(stop))
            batches = asyncio.create_task(self._batch_callbacks_periodically(stop))
            log.info("dispatcher.started")

            try:
                while not stop.is_set():
                    await self._step_safely(stop)
            finally:
                await self._finish_next_claim()
                await self._drain()
                await self.outcomes.close()
                for conn in self.claim_conns:
                    await conn.close()
                for side in (listening, pruning, sweeping, batches):
                    side.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await side
                log.info("dispatcher.stopped")

    async def _open_box(self, stop: asyncio.Event) -> SecretBox | None:
        """The account secrets' key, checked against the database. The database can go
        away between the start's check and this read; wait for it as a claim would, not
        exit (None if stopped meanwhile)."""
        while not stop.is_set():
            try:
                return await secretbox.open_bound(self.pool, self.settings)
            except DATABASE_DOWN:
                log.warning("dispatcher.database_down", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), CLAIM_ERROR_BACKOFF)
        return None

    async def _prune_periodically(self, stop: asyncio.Event) -> None:
        """Retention runs in every dispatcher; the deletes are idempotent, so replicas
        pruning at once do no harm."""
        while not stop.is_set():
            try:
                await store.prune(self.pool, self.settings.retention_days)
                log.info("retention.pruned")
            except Exception:  # down or otherwise: the next round tries again
                log.warning("retention.prune_failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.prune_interval)

    async def _sweep_periodically(self, stop: asyncio.Event) -> None:
        """Rows made due behind the claims' marks (by another program, with an earlier
        time) are found here, on a connection of the pool, and the next claim scans
        their hosts from them."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CLAIM_SWEEP_INTERVAL)
            if stop.is_set():
                return
            try:
                async with self.pool.acquire() as conn:
                    self.claim_window.lower(await store.due_hosts(conn))
            except Exception:  # down or otherwise: the next round tries again
                log.warning("dispatcher.sweep_failed", exc_info=True)

    async def _batch_callbacks_periodically(self, stop: asyncio.Event) -> None:
        """Every poll interval, queue the callbacks of batches that have completed."""
        while not stop.is_set():
            try:
                for name, delivery_id in await batch_callbacks.queue_due(self.pool):
                    log.info("batch.callback_queued", batch=name, delivery_id=delivery_id)
            except Exception:  # down or otherwise: the next round tries again
                log.warning("dispatcher.batch_callbacks_failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_interval)

    async def _step_safely(self, stop: asyncio.Event) -> None:
        """One turn; a failure the claim does not handle (e.g. an unexpected database error)
        is logged and waited out, never allowed to end the loop: in `serve` a dead loop
        would leave the receiver up and nothing delivered."""
        try:
            await self._step(stop)
        except Exception:
            log.error("dispatcher.step_failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CLAIM_ERROR_BACKOFF)

    async def _step(self, stop: asyncio.Event) -> None:
        self.heartbeat = time.monotonic()
        run, self.next_claim = self.next_claim, None
        if run is None:
            run = self._send_claim(self._plan_claim(self.claim_conns[0]))
        if self.backlog and self.ahead:
            spare = self.claim_conns[1] if run.conn is self.claim_conns[0] else self.claim_conns[0]
            beside = self._plan_claim(spare, beside=run)
            if beside.has_room(self.claim_cap):
                self.next_claim = self._send_claim(beside)
        began = time.perf_counter()
        claimed = await run.task
        log.debug(
            "dispatcher.claimed",
            asked=run.asked,
            claimed=len(claimed),
            sending=self.sending,
            held=self.held.count,
            beside=self.next_claim is not None,
            ms=round((time.perf_counter() - began) * 1000, 2),
        )
        for delivery in claimed:
            self.held.add(delivery)
        self._pump()
        self.backlog = len(claimed) >= max(run.asked, 1)
        if not self.backlog and self.next_claim is None:
            # Caught up (or full): wait for a reason to look. A freed slot is a reason only
            # when slots were what held work back: all slots taken, or a host at its cap.
            # Otherwise everything due was just claimed, and new work announces itself
            # (NOTIFY, or the poll for retries coming due); waking on every finished
            # callback would cost an empty claim per callback.
            reasons = [self.listener.wake.wait(), stop.wait()]
            if run.asked == 0 or run.room_ran_out(claimed, self.claim_cap):
                reasons.append(self.slot_freed.wait())
            await _wait_any(*reasons, seconds=self.settings.poll_interval)

    def _plan_claim(self, conn: ClaimConnection, beside: ClaimRun | None = None) -> ClaimRun:
        """A claim for what the free slots and per-host rooms allow, less what the claim
        `beside` (still in flight) may take."""
        free = self.window - self.sending - self.held.count - (beside.asked if beside else 0)
        busy = dict(self.per_host + self.held.per_host)  # what the per-host room counts
        run = ClaimRun(conn, max(0, min(free, self.settings.claim_batch)), busy)
        if beside is not None:
            run.busy, run.unlisted = reserve(busy, beside, self.claim_cap)
        return run

    def _send_claim(self, run: ClaimRun) -> ClaimRun:
        # Clear before claiming: a NOTIFY or a freed slot that arrives while the claim runs
        # must wake the wait in _step, not be erased by it (a lost wake-up costs a poll).
        self.listener.wake.clear()
        self.slot_freed.clear()
        self.freed = 0
        run.task = asyncio.ensure_future(self._claim(run))
        return run

    async def _finish_next_claim(self) -> None:
        """At stop, the claim running beside has its rows held, to be handed back."""
        run, self.next_claim = self.next_claim, None
        if run is not None:
            with contextlib.suppress(Exception):
                for delivery in await run.task:
                    self.held.add(delivery)

    async def _claim(self, run: ClaimRun) -> list[Claimed]:
        assert self.box is not None
        if run.asked <= 0:
            return []
        try:
            return await claim_deliveries(
                await run.conn.get(),
                self.box,
                run.asked,
                self.settings.lease_seconds,
                self.claim_cap,
                run.busy,
                run.unlisted,
                self.claim_window,
            )
        except DATABASE_DOWN:
            self.claim_window.reset()
            await run.conn.discard()
            log.warning("dispatcher.claim_failed", exc_info=True)
            await asyncio.sleep(CLAIM_ERROR_BACKOFF)
            return []
        except BaseException:
            self.claim_window.reset()
            await run.conn.discard()
            raise

    def _pump(self) -> None:
        """Start held deliveries while slots are free, host by host in turn."""
        stale: list[Claimed] = []
        cap, total = self.settings.per_host_concurrency, self.settings.dispatch_concurrency
        for host in self.held.hosts():
            while self.sending < total and self.per_host[host] < cap:
                d = self.held.pop(host, stale)
                if d is None:
                    break
                self._start(d)
            if self.sending >= total:
                break
        if stale:
            log.warning(
                "delivery.held_too_long",
                count=len(stale),
                webhook_ids=[d.webhook_id for d in stale],
            )
            self._track(self._hand_back(stale))

    async def _hand_back(self, rows: list[Claimed]) -> None:
        """Unsent rows go back to due at once, their attempt not counted."""
        try:
            await store.release_deliveries(self.pool, rows)
        except DATABASE_DOWN:  # their leases run out instead
            log.warning("dispatcher.hand_back_failed", count=len(rows), exc_info=True)

    def _track(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.in_flight.add(task)
        task.add_done_callback(self._finished)

    def _start(self, d: Claimed) -> None:
        """A slot (global and per host) is held while the HTTP exchange runs."""
        self.sending += 1
        self.per_host[d.host] += 1
        self._track(self._deliver(d))

    def _free_slot(self, host: str) -> None:
        self.sending -= 1
        self.per_host[host] -= 1
        if self.per_host[host] <= 0:
            del self.per_host[host]
        self._pump()
        self.freed += 1
        if self.freed >= self.refill_at:
            self.slot_freed.set()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery.crashed", exc_info=task.exception())

    async def _deliver(self, d: Claimed) -> None:
        """An unexpected failure is logged here, where the delivery's fields are known; the
        delivery keeps its lease and is retried when the lease runs out."""
        try:
            await self._attempt(d)
        except Exception:
            log.error("delivery.crashed", **_context(d), exc_info=True)

    async def _attempt(self, d: Claimed) -> None:
        assert self.session is not None
        try:
            result = await send(self.session, d, self.send_config)
        except asyncio.CancelledError:
            # Shutdown mid-send: hand the delivery back at once instead of after the lease.
            await asyncio.shield(store.release_deliveries(self.pool, [d]))
            raise
        finally:
            # The host is no longer being called: its slot can serve other deliveries while
            # this outcome is written. The delivery stays 'sending' under its lease, and its
            # task's next delivery stays 'waiting', until the write lands.
            self._free_slot(d.host)
        await self._record(d, result)

    async def _record(self, d: Claimed, result: AttemptResult) -> None:
        outcome = result.outcome
        delay = None
        if outcome.succeeded:
            state = "succeeded"
        else:
            if outcome.error not in _FINAL_ERRORS:
                delay = next_delay(d.attempt, outcome, self.settings.retry_schedule)
            state = "failed" if delay is None else "pending"
        if delay is not None:
            delay *= self.settings.retry_time_scale
        pause = host_pause(outcome)
        if pause is not None:
            try:
                await store.pause_host(self.pool, d.host, pause * self.settings.retry_time_scale)
            except DATABASE_DOWN:  # the pause is advice; the outcome below is what matters
                log.warning("dispatcher.pause_host_failed", **_context(d), exc_info=True)
        assert self.outcomes is not None
        kept = await self.outcomes.record(store.AttemptRecord(d, state, delay, result))
        self._log_outcome(d, result, state, delay, kept)

    def _log_outcome(
        self, d: Claimed, result: AttemptResult, state: str, delay: float | None, kept: bool
    ) -> None:
        o = result.outcome
        fields = {
            **_context(d),
            "status_code": o.status_code,
            "error": o.error,
            "duration_ms": result.duration_ms,
        }
        metrics.record_attempt(state, o.status_code, o.error, result.duration_ms, d.created_at)
        if not kept:
            log.warning("delivery.lease_lost", **fields)
            return
        # One line per attempt at info, named for its outcome; the bare attempt is debug.
        log.debug("delivery.attempted", **fields)
        if state == "succeeded":
            log.info("delivery.succeeded", **fields)
        elif state == "pending":
            log.info("delivery.retry_scheduled", delay_s=round(delay or 0, 3), **fields)
        else:
            log.warning(
                "delivery.exhausted" if o.error is None and not o.gone else "delivery.given_up",
                **fields,
            )

    async def _drain(self) -> None:
        """Stop claiming; hand held rows back, let in-flight callbacks finish within the
        grace time, then cancel."""
        held = self.held.take_all()
        if held:
            await self._hand_back(held)
        if self.in_flight:
            log.info("dispatcher.draining", in_flight=len(self.in_flight))
            _, pending = await asyncio.wait(
                set(self.in_flight), timeout=self.settings.shutdown_grace
            )
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
