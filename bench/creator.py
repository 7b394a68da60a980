"""The world's task maker: live tasks created through taskhook's API, as a customer makes
them (POST /v1/task/<type>, HTTP Basic with the account's live key as user name), at a
fixed concurrency, with the server-assigned ids kept in order.

Task `g` of a set named `prefix` gets the callback URL routes[g % 10] + ref(prefix, g), so
the sink knows which task called back, and the load generator sends its events for ids[g].
A set's ids are kept compactly (12 bytes each when they are 24 hex digits, as taskhook's
are), so a soak's million tasks cost the world megabytes, not hundreds of them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, overload

from bench import common
from bench.httpclient import Client

REQUEST_TIMEOUT = 60.0  # seconds for one create
ATTEMPTS = 3  # per task: a create that fails (timeout, 5xx, 503 shed) is sent again
_FAST = b'{"task_id":"'  # task_json puts the id first


class TaskSet(Sequence[str]):
    """The server-assigned ids of one set, in index order."""

    def __init__(self, prefix: str, count: int) -> None:
        self.prefix = prefix
        self._packed = bytearray(12 * count)
        self._loose: dict[int, str] = {}  # ids that are not 24 hex digits (none today)
        self._count = count

    def set(self, index: int, tid: str) -> None:
        if len(tid) == 24:
            try:
                self._packed[12 * index : 12 * index + 12] = bytes.fromhex(tid)
                return
            except ValueError:
                pass
        self._loose[index] = tid

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        loose = self._loose.get(index)
        return loose if loose is not None else self._packed[12 * index : 12 * index + 12].hex()

    def ref(self, index: int) -> str:
        return common.ref(self.prefix, index)


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def _task_id(data: bytes) -> str:
    if data.startswith(_FAST):
        end = data.index(b'"', len(_FAST))
        return data[len(_FAST) : end].decode()
    return str(json.loads(data)["task_id"])


async def create_set(
    *,
    urls: list[str],
    key: str,
    prefix: str,
    count: int,
    routes: list[str],
    concurrency: int = 32,
    max_rate: float | None = None,
    task_type: str = common.TASK_TYPE,
) -> tuple[TaskSet, dict[str, Any]]:
    """Create `count` pending live tasks (round-robin over the receivers' base `urls`);
    raises if one cannot be created after ATTEMPTS. max_rate: at most this many creates
    a second (a creator running beside a load)."""
    assert len(routes) == 10
    tasks = TaskSet(prefix, count)
    template = common.task_body_template()
    head = {"content-type": "application/json", "authorization": basic_auth(key)}
    path = f"/v1/task/{task_type}"
    clients = [Client(u, concurrency) for u in urls]
    errors: Counter[str] = Counter()
    state = {"next": 0}
    began = time.perf_counter()

    async def one(g: int) -> None:
        url = routes[g % 10] + tasks.ref(g)
        body = template.replace(common.CALLBACK_MARK, url).replace(common.INDEX_MARK, str(g))
        client = clients[g % len(clients)]
        for attempt in range(ATTEMPTS):
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, data = await client.post(path, body.encode(), head)
            except (OSError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
            else:
                if status == 200:
                    tasks.set(g, _task_id(data))
                    return
                errors[f"http_{status}"] += 1
                if status < 500 and status != 429:
                    break  # refused: sending it again would be refused again
            await asyncio.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"task {g} of {prefix} not created: {dict(errors)}")

    async def worker() -> None:
        while state["next"] < count:
            g = state["next"]
            state["next"] += 1
            if max_rate:
                await asyncio.sleep(max(0.0, began + g / max_rate - time.perf_counter()))
            await one(g)

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(count, 1)))))
    finally:
        for c in clients:
            c.close()
    elapsed = time.perf_counter() - began
    return tasks, {
        "tasks": count,
        "seconds": round(elapsed, 2),
        "tasks_per_s": round(count / max(elapsed, 1e-9), 1),
        "concurrency": concurrency,
        "errors": dict(errors),
    }


class Creator:
    """Sets made one after another in the background (the soak's and the held-snapshot
    scenario's windows), each available as soon as it is complete."""

    def __init__(self, sets: dict[str, TaskSet], chunks: list[tuple[str, int]], **create: Any):
        self.sets, self.chunks, self.create = sets, chunks, create
        self.done: list[dict[str, Any]] = []  # per set made: its figures
        self.error: str | None = None
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            for prefix, count in self.chunks:
                tasks, stats = await create_set(prefix=prefix, count=count, **self.create)
                self.sets[prefix] = tasks
                self.done.append({"prefix": prefix, "finished_at": time.perf_counter(), **stats})
                self.changed.set()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.changed.set()

    def bound(self, max_rate: float | None) -> None:
        """At most this many creates a second from the next set on (None: no bound)."""
        self.create["max_rate"] = max_rate

    def status(self) -> dict[str, Any]:
        created = sum(d["tasks"] for d in self.done)
        seconds = sum(d["seconds"] for d in self.done)
        return {
            "chunks_done": len(self.done),
            "chunks": len(self.chunks),
            "tasks": created,
            "seconds": round(seconds, 2),
            "tasks_per_s": round(created / seconds, 1) if seconds else None,
            "failed": self.error,
        }

    async def wait(self, prefix: str, timeout: float) -> dict[str, Any]:
        """Until set `prefix` exists (or the creator failed, or `timeout` s)."""
        began = time.perf_counter()
        deadline = began + timeout
        while prefix not in self.sets and self.error is None:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        if self.error is not None:
            raise RuntimeError(f"the task creator failed: {self.error}")
        return {"ready": prefix in self.sets, "waited_s": round(time.perf_counter() - began, 2)}

    def stop(self) -> None:
        self.task.cancel()
