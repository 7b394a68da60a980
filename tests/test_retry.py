"""The retry policy and target rules as pure functions, table-tested."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from taskhook.core.delivery import Outcome
from taskhook.core.retry import (
    DEFAULT_SCHEDULE,
    RETRY_AFTER_CAP,
    host_pause,
    next_delay,
    parse_retry_after,
)
from taskhook.core.targets import TargetRefused, check_url, is_forbidden_ip

FAIL = Outcome(status_code=500)


def test_default_schedule_is_20_retries_over_about_24_hours() -> None:
    """Scale's promise: up to 20 retries over the next 24 hours, growing delays."""
    assert len(DEFAULT_SCHEDULE) == 20
    assert 23.5 * 3600 < sum(DEFAULT_SCHEDULE) < 24.5 * 3600
    assert list(DEFAULT_SCHEDULE) == sorted(DEFAULT_SCHEDULE)


@pytest.mark.parametrize("attempt", [1, 5, 20])
def test_delay_follows_schedule_with_jitter(attempt: int) -> None:
    """Each delay is the scheduled one ±20 %, and the jitter really varies."""
    base = DEFAULT_SCHEDULE[attempt - 1]
    rng = random.Random(7)
    delays = [next_delay(attempt, FAIL, DEFAULT_SCHEDULE, rng) for _ in range(200)]
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
    assert len({round(d or 0, 6) for d in delays}) > 100


def test_exhausted_and_gone_stop() -> None:
    """After the last scheduled retry, or on 410 Gone, there is no next attempt."""
    assert next_delay(21, FAIL, DEFAULT_SCHEDULE) is None
    assert next_delay(1, Outcome(status_code=410), DEFAULT_SCHEDULE) is None


@pytest.mark.parametrize(
    ("status", "retry_after", "at_least"),
    [(429, 120.0, 120.0), (503, 120.0, 120.0), (429, 10 * 3600.0, RETRY_AFTER_CAP)],
)
def test_retry_after_is_honoured_and_capped(
    status: int, retry_after: float, at_least: float
) -> None:
    """Retry-After on 429/503 delays the retry at least that long, capped at one hour."""
    outcome = Outcome(status_code=status, retry_after=retry_after)
    delay = next_delay(1, outcome, DEFAULT_SCHEDULE)
    assert delay is not None and at_least <= delay <= max(at_least, 5 * 1.2)
    assert host_pause(outcome) == min(retry_after, RETRY_AFTER_CAP)


def test_retry_after_on_500_is_ignored_and_does_not_pause() -> None:
    """Only 429 and 503 may pause a host."""
    outcome = Outcome(status_code=500, retry_after=600)
    assert (next_delay(1, outcome, DEFAULT_SCHEDULE) or 0) <= 6
    assert host_pause(outcome) is None


def test_parse_retry_after_seconds_and_dates() -> None:
    """Retry-After is delta-seconds or an HTTP date; garbage is ignored."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after("30") == 30
    assert parse_retry_after(later, now) == pytest.approx(90)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "fe80::1",
        "224.0.0.1",
        "fc00::1",
    ],
)
def test_non_global_addresses_are_forbidden(ip: str) -> None:
    """Loopback, private, link-local, metadata, CGNAT, multicast and mapped forms are out."""
    assert is_forbidden_ip(ip)


@pytest.mark.parametrize("ip", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_global_addresses_are_allowed(ip: str) -> None:
    assert not is_forbidden_ip(ip)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "http://127.0.0.1/x",
        "http://[::1]:8080/x",
        "https://10.0.0.1/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_check_url_refuses_bad_schemes_and_literal_private_addresses(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_url(url, allow_private=False)


def test_check_url_allows_private_when_configured() -> None:
    check_url("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(TargetRefused):
        check_url("ftp://127.0.0.1/x", allow_private=True)
