"""The retry policy: pure functions, table-tested (tests/test_retry.py).

Scale promises "up to 20 times over the course of the next 24 hours". The default
schedule is 20 delays growing by a factor of about 1.586 from 5 seconds, so the 20th retry
falls about 24 hours after the first attempt. Each delay gets ±20 % jitter (as Svix does),
so retries of many deliveries that failed together do not arrive together.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from taskhook.core.delivery import Outcome

# seconds: round(5 * 1.586**i) for i in 0..19; sum = 86,517 s (24 h 2 min)
DEFAULT_SCHEDULE: tuple[float, ...] = (
    5,
    8,
    13,
    20,
    32,
    50,
    80,
    126,
    200,
    317,
    504,
    799,
    1267,
    2009,
    3186,
    5053,
    8013,
    12709,
    20157,
    31969,
)
JITTER = 0.20
# Retry-After is honoured up to this many seconds; a host cannot park us for a day.
RETRY_AFTER_CAP = 3600.0
# Timeouts and 429s without Retry-After wait at least this long (Svix's floor).
SLOW_DOWN_FLOOR = 60.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def next_delay(
    attempt: int, outcome: Outcome, schedule: tuple[float, ...], rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt after failed attempt number `attempt` (1-based),
    or None when the delivery must stop: retries exhausted, or 410 Gone."""
    if outcome.gone or attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    delay = base * (1 + (rng or random).uniform(-JITTER, JITTER))
    if outcome.retry_after is not None and outcome.status_code in (429, 503):
        delay = max(delay, min(outcome.retry_after, RETRY_AFTER_CAP))
    elif outcome.status_code == 429 or outcome.error == "timeout":
        delay = max(delay, min(SLOW_DOWN_FLOOR, base * 2))
    return delay


def host_pause(outcome: Outcome) -> float | None:
    """Seconds to pause every delivery to the host: a 429/503 that says when to come back."""
    if outcome.status_code in (429, 503) and outcome.retry_after is not None:
        return min(outcome.retry_after, RETRY_AFTER_CAP)
    return None
