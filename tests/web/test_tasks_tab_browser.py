"""The Tasks tab in a real browser: headless Chromium through Playwright, against
the real receiver, a running dispatcher and a real callback sink.

Chromium is Debian's (`/usr/bin/chromium`; `.ci/run` installs it). Without it these tests
fail on CI (CI=true) and are skipped elsewhere with a message that says how to install it:
they never pass silently. Screenshots of the main views go to test-artifacts/tasks-tab/;
TASKHOOK_DOCS_SCREENSHOT=1 also refreshes the README's docs/tasks-tab.png.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskhook.core.accounts import NewAccount
from tests.conftest import Api
from tests.sink import Sink
from tests.waits import wait_until

pytestmark = pytest.mark.browser  # Chromium through Playwright

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "tasks-tab"
DOCS_SCREENSHOT = ROOT / "docs" / "tasks-tab.png"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
STEP_TIMEOUT_MS = 10_000  # any one browser step


def _no_browser(reason: str) -> None:
    message = (
        f"{reason}: the Tasks tab's browser tests need Debian's Chromium "
        "(`apt-get install -y chromium`) and the `playwright` package (`pip install -e '.[dev]'`)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _no_browser("playwright is not installed")
    if not CHROMIUM.exists():
        _no_browser(f"no browser at {CHROMIUM}")
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _page(browser: Any) -> Any:
    context = await browser.new_context(
        viewport={"width": 1360, "height": 900}, accept_downloads=True
    )
    page = await context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    return page


async def _screenshot(page: Any, name: str, docs: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if docs and os.environ.get("TASKHOOK_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(DOCS_SCREENSHOT))


async def _sign_in(page: Any, base_url: str, key: str) -> None:
    await page.goto(base_url + "/tasks")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base_url + "/tasks")


async def _seed(api: Api, callback: str) -> list[dict[str, Any]]:
    """32 test tasks (completed at once, each calling back): 30 in `proj`, 2 in `other`."""
    await api.project()
    await api.project("other")
    instruction = (
        "## Is the item big or small?\n\nCompare it with a **car**; see the "
        "[guide](https://example.com/guide).\n\n<script>alert('x')</script>"
    )
    made = []
    for i in range(30):
        made.append(await api.task(callback_url=callback, instruction=instruction, tags=[f"n{i}"]))
    for _ in range(2):
        made.append(await api.task(project="other", callback_url=callback))
    return made


async def test_sign_in_filter_page_export_fix_and_resend(
    browser: Any,
    base_url: str,
    account: NewAccount,
    test_api: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Any,
    tmp_path: Path,
) -> None:
    """The whole Tasks tab in Chromium: sign in (a bad key first), filter (in the URL, kept
    on reload), page, export, open a task, fix it and see the callback reach the sink,
    resend it, all by real clicks."""
    receiver, sink_url = sink
    await run_dispatcher()
    made = await _seed(test_api, sink_url + "/ok")
    page = await _page(browser)

    await page.goto(base_url + "/tasks")
    assert "/signin" in page.url
    await page.get_by_label("API key").fill("test_" + "0" * 32)
    async with page.expect_response(lambda r: r.url.endswith("/signin")) as answer:
        await page.get_by_role("button", name="Sign in").click()
    assert (await answer.value).status == 401
    assert "That API key is not valid" in await page.get_by_role("alert").inner_text()
    await _screenshot(page, "signin")
    await _sign_in(page, base_url, account.test_key)
    assert await page.locator("tbody tr").count() == 32
    assert "32 tasks" in await page.locator("#summary").inner_text()

    # Filter: project and status, then reload: the filters live in the URL.
    await page.get_by_label("Project").fill("other")
    await page.get_by_label("Status").select_option("completed")
    await page.get_by_role("button", name="Apply filters").click()
    await page.wait_for_url("**/tasks?status=completed&project=other*")
    assert await page.locator("tbody tr").count() == 2
    await page.reload()
    assert await page.locator("tbody tr").count() == 2
    assert await page.get_by_label("Project").input_value() == "other"
    await page.get_by_label("Audit").select_option("accepted")
    await page.get_by_role("button", name="Apply filters").click()
    assert "No tasks match these filters" in await page.locator(".empty").inner_text()

    # Page: 25 a page, newest first; the older page holds the other 7.
    await page.goto(base_url + "/tasks?limit=25")
    first_page = await page.locator("tbody tr td:first-child a").all_inner_texts()
    assert first_page == [t["task_id"] for t in reversed(made)][:25]
    await _screenshot(page, "list", docs=True)
    await page.get_by_role("link", name="Older").click()
    await page.wait_for_url("**after=*")
    assert await page.locator("tbody tr").count() == 7

    # Export JSON of the filtered list.
    await page.goto(base_url + "/tasks?project=proj")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export JSON").click()
    download = await download_info.value
    saved = tmp_path / "export.json"
    await download.save_as(saved)
    exported = json.loads(saved.read_text())
    assert len(exported) == 30 and {t["project"] for t in exported} == {"proj"}

    # Open the newest proj task; its completion callback shows in the timeline.
    target = made[29]
    await page.get_by_role("link", name=target["task_id"]).click()
    await page.wait_for_url(f"**/tasks/{target['task_id']}")
    instruction = page.locator("#instruction")
    assert await instruction.locator("h2").inner_text() == "Is the item big or small?"
    assert "<script>alert('x')</script>" in await instruction.inner_text()  # text, not a tag
    await receiver.wait_for(
        lambda: any(r.json["task_id"] == target["task_id"] for r in receiver.received)
    )
    await _wait_for(page, "#callbacks [data-trigger=completed].state-succeeded")

    # Fix: invalid JSON is refused and changes nothing; a valid fix calls back.
    await page.get_by_label("Response (a JSON object)").fill('{"category": ')
    assert "Not valid JSON" in await page.locator("#fix-check").inner_text()
    await page.get_by_role("button", name="Save fix").click()
    assert "not valid JSON" in await page.get_by_role("alert").inner_text()
    await page.get_by_label("Response (a JSON object)").fill('{"category": "small"}')
    await page.get_by_role("button", name="Save fix").click()
    await page.wait_for_url("**done=fixed")
    assert "Response fixed" in await page.locator("#done").inner_text()

    def fixes() -> list[Any]:
        return [
            r.json
            for r in receiver.received
            if r.json["task_id"] == target["task_id"] and r.json.get("customer_review_status")
        ]

    await receiver.wait_for(lambda: len(fixes()) == 1)
    fixed = fixes()[0]
    assert fixed["response"] == {"category": "small"}
    assert fixed["prior_responses"] == [target["response"]]
    await _wait_for(page, "#callbacks [data-trigger=fixed].state-succeeded")

    # Resend: the same body arrives again, as a new delivery.
    await page.get_by_role("button", name="Resend latest callback").click()
    await page.wait_for_url("**done=resent*")
    await receiver.wait_for(lambda: len(fixes()) == 2)
    assert fixes()[1] == fixed
    await _wait_for(page, "#callbacks [data-trigger=resend].state-succeeded")
    await page.locator("#json-preview summary").click()
    await _screenshot(page, "detail")

    # Download JSON of this task.
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download JSON").click()
    one = tmp_path / "task.json"
    await (await download_info.value).save_as(one)
    assert json.loads(one.read_text())["prior_responses"] == [target["response"]]


async def _wait_for(page: Any, selector: str, timeout: float = 10.0) -> None:
    """Reload until the selector matches (the dispatcher works in the background)."""

    async def shown() -> bool:
        if await page.locator(selector).count():
            return True
        await page.reload()
        return False

    await wait_until(shown, timeout, f"{selector} on the page", interval=0.2)


async def test_no_access_across_accounts_in_the_browser(
    browser: Any,
    base_url: str,
    account: NewAccount,
    make_account: Any,
    test_api: Api,
) -> None:
    """Another account's session sees none of this account's tasks, and URL guessing (the
    detail page, its JSON, a forged POST with its own CSRF token) finds nothing."""
    await test_api.project()
    task = await test_api.task()
    other = await make_account("other")
    page = await _page(browser)
    await _sign_in(page, base_url, other.test_key)
    assert "No tasks yet" in await page.locator(".empty").inner_text()
    answer = await page.goto(f"{base_url}/tasks/{task['task_id']}")
    assert answer.status == 404
    assert await page.get_by_role("heading", level=1).inner_text() == "Task not found"
    answer = await page.goto(f"{base_url}/tasks/{task['task_id']}/json")
    assert answer.status == 404
    await page.goto(base_url + "/tasks")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    status = await page.evaluate(
        """async ([path, csrf]) => {
            const body = new URLSearchParams({csrf, action: "accept"});
            return (await fetch(path, {method: "POST", body})).status;
        }""",
        [f"/tasks/{task['task_id']}/audit", csrf],
    )
    assert status == 404
    # Keyboard: the first Tab reaches the skip link, which focuses the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
