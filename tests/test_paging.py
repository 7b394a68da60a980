"""Keyset paging of GET /v1/tasks: newest first, stable under inserts, tamper-checked."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


async def _page(api: Api, **params: Any) -> dict[str, Any]:
    status, body = await api.call("GET", "/v1/tasks", params={"project": "proj", **params})
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def test_pages_are_stable_under_concurrent_inserts(live: Api) -> None:
    """Tasks inserted while paging never shift, repeat or hide the ones being paged."""
    await live.project()
    originals = [(await live.task())["task_id"] for _ in range(7)]
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):  # bounded: 7 tasks at 3 a page need 3 pages
        page = await _page(live, limit=3, **({"next_token": token} if token else {}))
        assert page["has_more"] == ("next_token" in page)
        assert page["offset"] == 0 and page["limit"] == 3
        seen += [doc["task_id"] for doc in page["docs"]]
        await live.task()  # a concurrent insert between pages
        if not page["has_more"]:
            break
        token = page["next_token"]
    assert seen == list(reversed(originals))


async def test_total_counts_all_matches_and_last_page_has_no_token(live: Api) -> None:
    """total counts every match; the last page says has_more false and has no next_token."""
    await live.project()
    for _ in range(4):
        await live.task()
    first = await _page(live, limit=2)
    assert first["total"] == 4 and first["has_more"] and len(first["docs"]) == 2
    second = await _page(live, limit=2, next_token=first["next_token"])
    assert second["has_more"] is False and "next_token" not in second
    exact = await _page(live, limit=4)
    assert exact["has_more"] is False and "next_token" not in exact


async def test_token_is_bound_to_account_and_world(live: Api, test_api: Api) -> None:
    """A token issued to one world is refused in another (it is signed with its scope)."""
    await live.project()
    for _ in range(3):
        await live.task()
    token = (await _page(live, limit=1))["next_token"]
    status, body = await test_api.call(
        "GET", "/v1/tasks", params={"project": "proj", "next_token": token}
    )
    assert status == 400 and "next_token" in body["error"]
