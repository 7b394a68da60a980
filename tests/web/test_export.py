"""Export JSON: every task that matches the filters, streamed in keyset pages so
memory stays flat however many tasks match."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from taskhook.core.accounts import NewAccount
from taskhook.web.routes import EXPORT_PAGE
from tests.web.conftest import Seed, WebClient

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

N_TASKS = 20_000


async def test_export_streams_20000_tasks_in_flat_memory(
    web_client: Any, account: NewAccount, seed_tasks: Seed, tmp_path: Path
) -> None:
    """20,000 tasks arrive as one valid JSON array, newest first, written in many chunks,
    while the process's traced memory peaks far below the size of the export."""
    ids = await seed_tasks(account.account_id, N_TASKS, step="1 millisecond")
    client: WebClient = web_client()
    assert (await client.sign_in(account.live_key)).status == 303
    out = tmp_path / "export.json"
    chunks = 0
    tracemalloc.start()
    started = time.monotonic()
    try:
        async with client.session.get(client.base + "/tasks/export.json") as resp:
            assert resp.status == 200
            assert resp.headers["Transfer-Encoding"] == "chunked"  # streamed: no length known
            assert resp.headers["Content-Disposition"].startswith('attachment; filename="tasks-')
            with out.open("wb") as f:
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    f.write(chunk)
                    chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    size = out.stat().st_size
    exported = json.loads(out.read_text())
    assert [t["task_id"] for t in exported] == ids
    assert exported[0]["params"] == {"attachment": "a", "categories": ["x", "y"]}
    assert chunks >= N_TASKS // EXPORT_PAGE
    # A whole export held in memory would cost several times its size; one page of
    # EXPORT_PAGE tasks at a time costs a small, fixed amount.
    assert peak < size / 2, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB export"
    print(
        f"export: {size / 1e6:.1f} MB, {chunks} chunks, peak {peak / 1e6:.1f} MB, {elapsed:.1f} s"
    )


async def test_list_stays_fast_on_10000_tasks(
    web_client: Any, account: NewAccount, seed_tasks: Seed
) -> None:
    """The list (with its total count) answers quickly on 10,000 tasks, unfiltered,
    filtered, and deep in the pages."""
    await seed_tasks(
        account.account_id, 5_000, status="completed", customer_review_status="pending"
    )
    await seed_tasks(account.account_id, 5_000, start="2024-06-01T00:00:00Z", work_started=True)
    client: WebClient = web_client()
    assert (await client.sign_in(account.live_key)).status == 303
    slowest = 0.0
    expected = {
        "/tasks": "10,000",
        "/tasks?status=in_progress": "5,000",
        "/tasks?audit=ready&limit=100": "5,000",
    }
    for path, total in expected.items():
        started = time.monotonic()
        page = await client.get(path)
        slowest = max(slowest, time.monotonic() - started)
        assert page.status == 200 and f"<strong>{total}</strong>" in page.text
    page = await client.get("/tasks?limit=100")
    for _ in range(20):  # 20 pages deep: keyset paging costs the same on every page
        next_link = page.text.split('" rel="next"')[0].rsplit('href="', 1)[1].replace("&amp;", "&")
        started = time.monotonic()
        page = await client.get(next_link)
        slowest = max(slowest, time.monotonic() - started)
    assert "showing 2,001\u20132,100" in page.text
    assert slowest < 0.5, f"slowest list page took {slowest:.2f} s"
