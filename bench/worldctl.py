"""The orchestrator's handle on the world process (bench/world.py): start it, send a
command, read its reply within a deadline, stop it by PID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.service import REPO, cpu_seconds

START_TIMEOUT = 30.0  # seconds


class WorldError(RuntimeError):
    pass


class World:
    def __init__(self, proc: asyncio.subprocess.Process, sink_port: int, log_path: Path) -> None:
        self.proc, self.sink_port, self.log_path = proc, sink_port, log_path

    @classmethod
    async def start(cls, logs: Path) -> World:
        log_path = logs / "world.log"
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.world",
                cwd=REPO,
                limit=2**24,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        try:
            hello = await cls._read(proc, START_TIMEOUT)
        except BaseException:
            await cls._kill(proc)
            raise
        return cls(proc, int(hello["sink_port"]), log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def sink(self, kind: str, host: str = "127.0.0.1") -> str:
        """Base URL of a sink path; the task id (or a counter) is appended."""
        return f"http://{host}:{self.sink_port}/{kind}/"

    async def call(self, cmd: str, deadline: float, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        reply = await self._read(self.proc, deadline)
        if "error" in reply:
            raise WorldError(f"world {cmd}: {reply['error']}")
        return reply

    @staticmethod
    async def _read(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise WorldError(f"world exited (code {proc.returncode}); see its log")
        data: dict[str, Any] = json.loads(line)
        return data

    async def stop(self) -> None:
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                await self.proc.stdin.drain()
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)
        await self._kill(self.proc)

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
