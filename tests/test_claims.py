"""The room a claim may take while another claim of the same dispatcher is in flight
(taskhook/dispatcher/claims.py). The dispatcher tests show the two claims together in
test_dispatcher.py; here, the arithmetic, case by case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from taskhook.core.delivery import Claimed
from taskhook.dispatcher.claims import ClaimConnection, ClaimRun, reserve

CAP = 6
CONN = ClaimConnection("unused")  # never connects: nothing here runs a query


def _claimed(*hosts: str) -> list[Claimed]:
    now = datetime.now(UTC)
    return [
        Claimed(i, "t", "a", "completed", "u", h, "{}", "w", 1, uuid.uuid4(), "k", ("s",), now)
        for i, h in enumerate(hosts)
    ]


def test_a_claim_takes_at_most_its_ask_and_each_hosts_room() -> None:
    run = ClaimRun(CONN, asked=4, busy={"full": 6, "half": 3}, unlisted=1)
    assert run.most_taken("full", CAP) == 0
    assert run.most_taken("half", CAP) == 3
    assert run.most_taken("other", CAP) == 4  # room 5, but it asked for 4
    assert run.most_taken(None, CAP) == 4


def test_the_claim_beside_counts_what_the_first_may_take_from_every_host() -> None:
    first = ClaimRun(CONN, asked=4, busy={"a": 3, "b": 6})
    busy, unlisted = reserve({"a": 4, "c": 1}, first, CAP)
    # a: 4 now, and the first claim may still take 3 more; b: at its cap for the first
    # claim, so nothing more; c: unknown to the first claim, which may take 4 of it.
    assert busy == {"a": 7, "b": 0, "c": 5}
    assert unlisted == 4  # any other host: the first claim may take 4 of it


def test_a_claim_with_no_room_anywhere_is_not_sent() -> None:
    assert not ClaimRun(CONN, asked=0, busy={}).has_room(CAP)
    assert not ClaimRun(CONN, asked=5, busy={"a": 6}, unlisted=6).has_room(CAP)
    assert ClaimRun(CONN, asked=5, busy={"a": 6}, unlisted=0).has_room(CAP)
    assert ClaimRun(CONN, asked=5, busy={"a": 5}, unlisted=6).has_room(CAP)


def test_room_ran_out_when_a_host_reached_its_cap_or_no_other_host_had_room() -> None:
    run = ClaimRun(CONN, asked=10, busy={"a": 4})
    assert run.room_ran_out(_claimed("a", "a"), CAP)  # 4 + 2 = the cap
    assert not run.room_ran_out(_claimed("a", "b"), CAP)
    assert ClaimRun(CONN, asked=10, busy={}, unlisted=6).room_ran_out([], CAP)
    beside = ClaimRun(CONN, asked=10, busy={"a": 1}, unlisted=4)
    assert beside.room_ran_out(_claimed("b", "b"), CAP)  # b had 6 - 4 = 2 rows of room
    assert not beside.room_ran_out(_claimed("b"), CAP)
