"""The Tasks tab's filters, read from the URL query string (a filtered view can be shared
and reloaded), and mapped onto taskhook's task columns.

Seed 003's statuses on taskhook's four (`pending`, `completed`, `canceled`, `error`):
Queued is pending with no work started; In Progress is pending with work started (a
`task.started` event); Redo is a task Scale redid or is redoing (recalled at least once:
`times_redone` > 0, or pending again after a completion). Customer audit statuses: Ready to
Audit is `customer_review_status` `pending` (completed, not yet audited); Accepted, Fixed and
Rejected are the audit results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from multidict import MultiMapping

from taskhook.core.store import TaskFilters

# value: (label, API statuses, work_started, redone)
STATUSES: dict[str, tuple[str, list[str] | None, bool | None, bool | None]] = {
    "completed": ("Completed", ["completed"], None, None),
    "in_progress": ("In Progress", ["pending"], True, None),
    "queued": ("Queued", ["pending"], False, None),
    "error": ("Error", ["error"], None, None),
    "canceled": ("Canceled", ["canceled"], None, None),
    "redo": ("Redo", None, None, True),
}
AUDITS = {
    "ready": ("Ready to Audit", "pending"),
    "accepted": ("Accepted", "accepted"),
    "fixed": ("Fixed", "fixed"),
    "rejected": ("Rejected", "rejected"),
}
PACIFIC = ZoneInfo("America/Los_Angeles")
ZONES = {"utc": "UTC", "pacific": "Pacific Time", "local": "Local Time"}
PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
# The query parameters that select tasks (not paging): the export takes the same ones.
FILTER_PARAMS = (
    "status",
    "audit",
    "project",
    "batch",
    "from",
    "to",
    "tz",
    "tzname",
    "tzoffset",
)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?$")
_MAX_OFFSET_MINUTES = 18 * 60


@dataclass
class View:
    """What the list shows: the filters, the zone for times, and the form's values."""

    filters: TaskFilters
    zone: tzinfo
    zone_label: str
    values: dict[str, str]
    limit: int = DEFAULT_PAGE_SIZE
    errors: list[str] = field(default_factory=list)

    def filter_query(self) -> dict[str, str]:
        """The filters as query parameters (for export links and the next page)."""
        return {k: v for k, v in self.values.items() if k in FILTER_PARAMS and v}

    @property
    def filtered(self) -> bool:
        keys = ("status", "audit", "project", "batch", "from", "to")
        return any(self.values.get(k) for k in keys)


def _zone(values: dict[str, str], errors: list[str]) -> tuple[tzinfo, str]:
    """UTC, Pacific (DST-aware), or the browser's zone: its IANA name (tzname) when this
    server knows it, else its UTC offset in minutes (tzoffset), both set by tasks.js."""
    choice = values["tz"] or "utc"
    if choice == "pacific":
        return PACIFIC, "Pacific Time"
    if choice == "local":
        name = values["tzname"]
        if name:
            try:
                return ZoneInfo(name), f"Local Time ({name})"
            except (ZoneInfoNotFoundError, ValueError):
                pass
        offset = values["tzoffset"]
        if re.fullmatch(r"[+-]?\d{1,4}", offset) and abs(int(offset)) <= _MAX_OFFSET_MINUTES:
            minutes = int(offset)
            sign, hours = ("+" if minutes >= 0 else "-"), divmod(abs(minutes), 60)
            label = f"Local Time (UTC{sign}{hours[0]:02d}:{hours[1]:02d})"
            return timezone(timedelta(minutes=minutes)), label
        errors.append("Local time needs the browser's time zone (JavaScript); using UTC.")
    elif choice != "utc":
        errors.append(f"Unknown time zone choice {choice!r}; using UTC.")
    return UTC, "UTC"


def _bound(raw: str, name: str, zone: tzinfo, end: bool, errors: list[str]) -> datetime | None:
    """A date (the whole day, inclusive) or a date and time, in the chosen zone."""
    if not raw:
        return None
    try:
        if not _DATE_TIME.match(raw):
            raise ValueError
        if "T" in raw:
            return datetime.fromisoformat(raw).replace(tzinfo=zone)
        day = date.fromisoformat(raw)
    except ValueError:
        errors.append(f"'{name}' must be a date (YYYY-MM-DD), got {raw!r}.")
        return None
    if end:  # through the end of that day: the last microsecond before the next one
        return datetime.combine(day + timedelta(days=1), time(), zone) - timedelta(microseconds=1)
    return datetime.combine(day, time(), zone)


def _choice(values: dict[str, str], name: str, allowed: dict[str, Any], errors: list[str]) -> Any:
    raw = values[name]
    if not raw:
        return None
    if raw not in allowed:
        errors.append(f"Unknown {name} {raw!r}; expected one of {', '.join(allowed)}.")
        return None
    return allowed[raw]


def _limit(raw: str, errors: list[str]) -> int:
    if not raw:
        return DEFAULT_PAGE_SIZE
    if raw.isascii() and raw.isdigit() and int(raw) in PAGE_SIZES:
        return int(raw)
    errors.append(f"Page size must be one of {', '.join(map(str, PAGE_SIZES))}.")
    return DEFAULT_PAGE_SIZE


def parse(query: MultiMapping[str]) -> View:
    """Bad values are reported (errors) and that filter is left out, never a 500."""
    values = {name: query.get(name, "").strip() for name in (*FILTER_PARAMS, "limit")}
    errors: list[str] = []
    zone, zone_label = _zone(values, errors)
    status = _choice(values, "status", STATUSES, errors)
    audit = _choice(values, "audit", AUDITS, errors)
    created_after = _bound(values["from"], "from", zone, False, errors)
    created_before = _bound(values["to"], "to", zone, True, errors)
    if created_after and created_before and created_after > created_before:
        errors.append("The 'from' date is after the 'to' date: nothing can match.")
    api = TaskFilters(
        project=values["project"] or None,
        batch=values["batch"] or None,
        statuses=status[1] if status else None,
        created_after=created_after,
        created_before=created_before,
        review_statuses=[audit[1]] if audit else None,
    )
    filters = replace(
        api, work_started=status[2] if status else None, redone=status[3] if status else None
    )
    return View(filters, zone, zone_label, values, _limit(values["limit"], errors), errors)
