"""Scale's Teams API through the official SDK: list_teammates, invite_teammates and
update_teammates_role, one team per account, changed only with a live key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import scaleapi
from scaleapi.exceptions import ScaleException, ScaleInvalidRequest
from scaleapi.teams import TeammateRole

from taskhook.core.accounts import NewAccount

Client = scaleapi.ScaleClient


async def run(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def roles(team: list[Any]) -> dict[str, str]:
    return {t.email: t.role for t in team}


async def test_invite_list_and_change_roles(
    sdk: Callable[[str], Client], account: NewAccount
) -> None:
    live, test = sdk(account.live_key), sdk(account.test_key)
    assert await run(live.list_teammates) == []
    team = await run(
        live.invite_teammates, ["Ann@Example.com", "bob@example.com"], TeammateRole.Labeler
    )
    assert roles(team) == {"ann@example.com": "labeler", "bob@example.com": "labeler"}
    ann = team[0]
    assert ann.is_studio_labeler is True and ann.company == account.name
    assert ann.expiry is None
    again = await run(live.invite_teammates, ["ann@example.com"], TeammateRole.Admin)
    assert roles(again)["ann@example.com"] == "labeler"  # an invitation changes no role
    changed = await run(live.update_teammates_role, ["bob@example.com"], TeammateRole.Manager)
    assert roles(changed) == {"ann@example.com": "labeler", "bob@example.com": "manager"}
    assert changed[1].is_studio_labeler is False
    assert roles(await run(test.list_teammates)) == roles(changed)  # one team, both worlds
    assert roles(await run(ann.update_teammate_role, TeammateRole.Member)) == {
        "ann@example.com": "member",
        "bob@example.com": "manager",
    }


async def test_bad_changes_change_nothing(
    sdk: Callable[[str], Client],
    account: NewAccount,
    make_account: Callable[[str], Any],
) -> None:
    live, test = sdk(account.live_key), sdk(account.test_key)
    await run(live.invite_teammates, ["ann@example.com"], TeammateRole.Labeler)
    with pytest.raises(ScaleInvalidRequest, match=r"cat@example\.com"):
        await run(
            live.update_teammates_role,
            ["ann@example.com", "cat@example.com"],
            TeammateRole.Admin,
        )
    with pytest.raises(ScaleInvalidRequest, match="not an e-mail"):
        await run(live.invite_teammates, ["not-an-address"], TeammateRole.Labeler)
    with pytest.raises(ScaleException) as err:
        await run(test.invite_teammates, ["dan@example.com"], TeammateRole.Labeler)
    assert err.value.code == 403
    assert roles(await run(live.list_teammates)) == {"ann@example.com": "labeler"}
    other: NewAccount = await make_account("other")
    assert await run(sdk(other.live_key).list_teammates) == []
