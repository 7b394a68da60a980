"""The standalone dispatcher's ops server: /healthz, /readyz and /metrics on its own port.

Real `taskhook dispatcher` processes, started and stopped by PID; a TCP proxy in front of
PostgreSQL stands in for a database that becomes unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskhook.core import ops
from taskhook.dispatcher.loop import Dispatcher
from taskhook.dispatcher.ops_server import create_ops_app, serving
from tests.conftest import Api, dispatcher_settings
from tests.sink import Sink
from tests.test_dispatcher import completed_task
from tests.waits import wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

TASKHOOK = str(Path(sys.executable).parent / "taskhook")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    """A `taskhook dispatcher` process whose stderr is read as it comes (so a chatty
    process never blocks on a full pipe)."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.url = proc, f"http://127.0.0.1:{port}"
        self.err: list[str] = []
        assert proc.stderr is not None
        self._reading = asyncio.create_task(self._read(proc.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.err.append(line.decode())

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    async def stop(self) -> int:
        """SIGTERM by PID; the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout=30)
        await self._reading
        return code


async def spawn(dsn: str, port: int, **env: str) -> Running:
    # Outside settings are dropped, except the key the test databases' secrets use.
    kept = ("TASKHOOK_SECRET_KEY",)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK_") or k in kept}
    settings = {
        "TASKHOOK_DATABASE_URL": dsn,
        "TASKHOOK_HOST": "127.0.0.1",
        "TASKHOOK_DISPATCHER_PORT": str(port),
        "TASKHOOK_ALLOW_PRIVATE_TARGETS": "1",
        "TASKHOOK_POLL_INTERVAL": "0.1",
        "TASKHOOK_LOG_FORMAT": "json",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        TASKHOOK,
        "dispatcher",
        env={**base, **settings},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Running(proc, port)


@pytest.fixture
async def dispatchers() -> AsyncIterator[list[Running]]:
    """Every process a test starts is stopped (SIGTERM, then SIGKILL) by its PID."""
    started: list[Running] = []
    yield started
    for running in started:
        if running.proc.returncode is None:
            running.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(running.proc.wait(), timeout=20)
            except TimeoutError:
                running.proc.kill()
                await running.proc.wait()


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, dict[str, str]]:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def answers(http: aiohttp.ClientSession, running: Running, path: str, status: int) -> None:
    """Wait until GET path gives `status` (connection refused counts as not yet)."""

    async def check() -> bool:
        if running.proc.returncode is not None:
            raise AssertionError(f"dispatcher exited: {running.stderr[-3000:]}")
        try:
            return (await get(http, running.url + path))[0] == status
        except aiohttp.ClientConnectionError:
            return False

    await wait_until(check, timeout=20, what=f"GET {path} to answer {status}")


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


class PgProxy:
    """A TCP proxy to PostgreSQL on 127.0.0.1; stop() refuses new connections and cuts
    the open ones, as a database that went away would."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = query.pop("host", [parts.hostname or "127.0.0.1"])[0]
        port = parts.port or int(query.pop("port", ["5432"])[0])
        if host.startswith("/"):
            path = f"{host}/.s.PGSQL.{port}"
            self.connect: Callable[[], Awaitable[Any]] = lambda: asyncio.open_unix_connection(path)
        else:
            self.connect = lambda: asyncio.open_connection(host, port)
        self.port = free_port()
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        self.dsn = urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, doseq=True)))
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.links.add(task)
        up_writer = None
        try:
            up_reader, up_writer = await self.connect()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self.links.discard(task)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.links):
            task.cancel()
        await asyncio.gather(*self.links, return_exceptions=True)
        await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


# --- a real process -----------------------------------------------------------------------


@pytest.mark.subprocess
async def test_dispatcher_serves_probes_and_its_delivery_metrics(
    test_api: Api,
    sink: tuple[Sink, str],
    dsn: str,
    http: aiohttp.ClientSession,
    dispatchers: list[Running],
) -> None:
    """/healthz and /readyz answer 200 on TASKHOOK_DISPATCHER_PORT, and /metrics exports
    the counters of the callback this process delivered; SIGTERM still exits 0."""
    receiver, url = sink
    await completed_task(test_api, url + "/ok")
    running = await spawn(dsn, free_port())
    dispatchers.append(running)
    await answers(http, running, "/healthz", 200)
    await receiver.wait_for(lambda: len(receiver.to("/ok")) == 1, timeout=20)

    async def delivered() -> bool:
        _, text, _ = await get(http, running.url + "/metrics")
        return sample(text, "taskhook_deliveries_finished_total", state="succeeded") == 1

    await wait_until(delivered, timeout=20)
    status, text, headers = await get(http, running.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert sample(text, "taskhook_delivery_attempts_total", outcome="2xx") == 1
    assert sample(text, "taskhook_delivery_attempt_seconds_count") == 1
    assert sample(text, "taskhook_callback_latency_seconds_count") == 1
    assert sample(text, "taskhook_delivery_queue_depth") == 0  # read from the database
    status, body, _ = await get(http, running.url + "/readyz")
    assert status == 200 and '"ready"' in body
    assert await running.stop() == 0, running.stderr[-3000:]
    assert "dispatcher.ops_started" in running.stderr
    assert "dispatcher.stopped" in running.stderr
    with pytest.raises(aiohttp.ClientConnectionError):  # the ops server stopped with it
        await get(http, running.url + "/healthz")


@pytest.mark.subprocess
async def test_readyz_fails_while_the_database_is_unreachable(
    dsn: str, http: aiohttp.ClientSession, dispatchers: list[Running]
) -> None:
    """Database gone: /readyz is 503 with Retry-After while /healthz and /metrics still
    answer; back: ready again. SIGTERM exits 0 either way."""
    proxy = PgProxy(dsn)
    await proxy.start()
    running = await spawn(proxy.dsn, free_port())
    dispatchers.append(running)
    try:
        await answers(http, running, "/readyz", 200)
        await proxy.stop()
        await answers(http, running, "/readyz", 503)
        status, body, headers = await get(http, running.url + "/readyz")
        assert status == 503 and headers["Retry-After"] and '"status_code":503' in body
        assert (await get(http, running.url + "/healthz"))[0] == 200
        status, text, _ = await get(http, running.url + "/metrics")
        assert status == 200 and "taskhook_delivery_attempts_total" in text
        await proxy.start()
        await answers(http, running, "/readyz", 200)
    finally:
        code = await running.stop()
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.stop()
    assert code == 0, running.stderr[-3000:]


@pytest.mark.subprocess
async def test_a_taken_port_stops_the_start_with_a_message(
    dsn: str, dispatchers: list[Running]
) -> None:
    """The ops port is in use: exit 2 with one line naming the address and
    TASKHOOK_DISPATCHER_PORT."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        running = await spawn(dsn, taken.getsockname()[1])
        dispatchers.append(running)
        code = await asyncio.wait_for(running.proc.wait(), timeout=60)
        await running.stop()
    assert code == 2
    [line] = [line for line in running.stderr.splitlines() if not line.startswith("{")]
    assert running.url.removeprefix("http://") in line, line
    assert "TASKHOOK_DISPATCHER_PORT" in line, line
    assert "Traceback" not in running.stderr


# --- the app in process ---------------------------------------------------------------------


async def test_readyz_is_503_when_the_dispatcher_loop_is_stuck(
    aiohttp_server: Any, pool: asyncpg.Pool, dsn: str, http: aiohttp.ClientSession
) -> None:
    """Same rule as the receiver's: no loop turn for STUCK_AFTER seconds is not ready."""
    settings = dispatcher_settings()
    dispatcher = Dispatcher(pool, dsn, settings)
    server = await aiohttp_server(create_ops_app(settings, pool, dispatcher))
    base = f"http://127.0.0.1:{server.port}"
    assert (await get(http, base + "/readyz"))[0] == 200
    dispatcher.heartbeat = time.monotonic() - ops.STUCK_AFTER - 1
    status, body, headers = await get(http, base + "/readyz")
    assert status == 503 and "stuck" in body and headers["Retry-After"]
    assert (await get(http, base + "/healthz"))[0] == 200


async def test_port_zero_means_no_ops_server(pool: asyncpg.Pool, dsn: str) -> None:
    settings = dispatcher_settings(dispatcher_port=0)
    async with serving(settings, pool, Dispatcher(pool, dsn, settings)) as url:
        assert url is None


async def test_ops_server_listens_on_host_and_dispatcher_port(
    pool: asyncpg.Pool, dsn: str, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    settings = dispatcher_settings(host="127.0.0.1", dispatcher_port=port)
    async with serving(settings, pool, Dispatcher(pool, dsn, settings)) as url:
        assert url == f"http://127.0.0.1:{port}"
        assert (await get(http, url + "/healthz"))[0] == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(http, f"http://127.0.0.1:{port}/healthz")


async def test_a_database_gone_between_the_start_and_the_loop_is_waited_for(dsn: str) -> None:
    """The start found the database, then it went away before the loop read its secrets
    key: the dispatcher waits for it (as its claims would) instead of exiting."""
    from taskhook.core.db import create_pool

    proxy = PgProxy(dsn)
    await proxy.start()
    pool = await create_pool(proxy.dsn, min_size=0, max_size=2)
    stop = asyncio.Event()
    try:
        await proxy.stop()
        dispatcher = Dispatcher(pool, proxy.dsn, dispatcher_settings())
        running = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(1.5)  # fixed: past a 1 s back-off, it must still be waiting
        assert not running.done() and dispatcher.box is None
        await proxy.start()
        await wait_until(lambda: dispatcher.box is not None, timeout=15)
        stop.set()
        await asyncio.wait_for(running, 15)
    finally:
        stop.set()
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.stop()
        await pool.close()
