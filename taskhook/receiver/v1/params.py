"""Query-string parsing for list endpoints, as the SDK sends it.

The SDK repeats list params (`tags=a&tags=b`), comma-joins review statuses, sends Python
booleans as `True`/`False`, and names created-time filters `start_time`/`end_time`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from multidict import MultiMapping

from taskhook.core.errors import BadRequest
from taskhook.core.store import TaskFilters
from taskhook.core.tasktypes import TASK_TYPES
from taskhook.core.validation import parse_time

STATUSES = frozenset({"pending", "completed", "canceled", "error"})
REVIEW_STATUSES = frozenset({"pending", "accepted", "fixed", "rejected", "commented"})
MAX_LIMIT = 100
MAX_OFFSET = 2**63 - 1  # PostgreSQL's bigint, the type of OFFSET
_REST_OF_MILLISECOND = timedelta(microseconds=999)


def parse_limit(query: MultiMapping[str], default: int = MAX_LIMIT) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"'limit' must be an integer from 1 to {MAX_LIMIT}, got {raw!r}.")
    return value


def parse_offset(query: MultiMapping[str]) -> int:
    """ASCII digits only ('²'.isdigit() is true), and no larger than a bigint OFFSET."""
    raw = query.get("offset") or "0"
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_OFFSET))
    if not digits or int(raw) > MAX_OFFSET:
        raise BadRequest(f"'offset' must be an integer from 0 to {MAX_OFFSET}, got {raw!r}.")
    return int(raw)


def parse_bool(query: MultiMapping[str], name: str) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"'{name}' must be true or false, got {raw!r}.")


def _time(query: MultiMapping[str], *names: str) -> datetime | None:
    for name in names:
        raw = query.get(name)
        if raw:
            return parse_time(raw, name)
    return None


def upper_bound(value: datetime | None) -> datetime | None:
    """An inclusive upper bound given to the millisecond covers that whole millisecond.

    Timestamps are reported to the millisecond but stored to the microsecond, so
    `end_time=<a task's created_at>` must still match that task.
    """
    if value is None or value.microsecond % 1000:
        return value
    return value + _REST_OF_MILLISECOND


def _many(query: MultiMapping[str], name: str, split: bool = False) -> list[str] | None:
    values = [v for v in query.getall(name, []) if v != ""]
    if split:
        values = [part.strip() for v in values for part in v.split(",") if part.strip()]
    return values or None


def _enum_list(query: MultiMapping[str], name: str, allowed: frozenset[str]) -> list[str] | None:
    values = _many(query, name, split=True)
    for value in values or []:
        if value not in allowed:
            raise BadRequest(
                f"'{name}' has an unknown value {value!r}; expected one of "
                f"{', '.join(sorted(allowed))}."
            )
    return values


def task_filters(query: MultiMapping[str]) -> TaskFilters:
    task_type = query.get("type") or None
    if task_type is not None and task_type not in TASK_TYPES:
        raise BadRequest(f"'type' has an unknown task type {task_type!r}.")
    return TaskFilters(
        project=query.get("project") or None,
        batch=query.get("batch") or None,
        statuses=_enum_list(query, "status", STATUSES),
        type=task_type,
        created_after=_time(query, "start_time", "created_after"),
        created_before=upper_bound(_time(query, "end_time", "created_before")),
        completed_after=_time(query, "completed_after"),
        completed_before=upper_bound(_time(query, "completed_before")),
        updated_after=_time(query, "updated_after"),
        updated_before=upper_bound(_time(query, "updated_before")),
        review_statuses=_enum_list(query, "customer_review_status", REVIEW_STATUSES),
        unique_ids=_many(query, "unique_id"),
        tags=_many(query, "tags"),
    )
