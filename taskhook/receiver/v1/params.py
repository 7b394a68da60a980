"""Query strings of the v1 endpoints, as the SDK sends them, as query models (routes.py).

The SDK repeats list params (`tags=a&tags=b`), comma-joins review statuses, sends Python
booleans as `True`/`False`, and names created-time filters `start_time`/`end_time`. Each
type below parses the raw string and raises the 400 that names the parameter; its JSON
Schema is what the document shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import annotated_types
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from taskhook.core.errors import BadRequest
from taskhook.core.store import TaskFilters
from taskhook.core.tasktypes import TASK_TYPES
from taskhook.core.validation import parse_time

STATUSES = frozenset({"pending", "completed", "canceled", "error"})
REVIEW_STATUSES = frozenset({"pending", "accepted", "fixed", "rejected", "commented"})
BATCH_STATUSES = frozenset({"staging", "in_progress", "completed"})
MAX_LIMIT = 100
MAX_OFFSET = 2**63 - 1  # PostgreSQL's bigint, the type of OFFSET
_REST_OF_MILLISECOND = timedelta(microseconds=999)
BOOL_NOTE = "Also `True`/`False`, `1`/`0`, `yes`/`no` (any case), as the SDK sends them."
TIME_NOTE = (
    "ISO 8601: `2024-01-31`, `2024-01-31 12:00:00.000000` or `2024-01-31T12:00:00-07:00`; "
    "no offset means UTC."
)
TIME_SCHEMA = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
}


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


@dataclass(frozen=True)
class Parsed(annotated_types.GroupedMetadata):
    """A query parameter's metadata (`Annotated[str | None, Parsed(...)]`): the raw value
    goes through `check`, which raises the 400, and the document shows `schema`."""

    check: Callable[[Any, ValidationInfo], Any]
    schema: dict[str, Any]

    def __iter__(self) -> Iterator[object]:
        yield BeforeValidator(self.check)
        yield WithJsonSchema(self.schema)


def _limit(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"'limit' must be an integer from 1 to {MAX_LIMIT}, got {raw!r}.")
    return value


def _offset(raw: str) -> int:
    """ASCII digits only ('²'.isdigit() is true), and no larger than a bigint OFFSET."""
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_OFFSET))
    if not digits or int(raw) > MAX_OFFSET:
        raise BadRequest(f"'offset' must be an integer from 0 to {MAX_OFFSET}, got {raw!r}.")
    return int(raw)


def _flag(raw: str, info: ValidationInfo) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"'{info.field_name}' must be true or false, got {raw!r}.")


def _time(raw: str, info: ValidationInfo) -> datetime:
    return parse_time(raw, str(info.field_name))


def _required(raw: str | None, info: ValidationInfo) -> str:
    if not raw:
        raise BadRequest(f"Missing required query parameter '{info.field_name}'.")
    return raw


def _unknown(name: Any, value: str, allowed: frozenset[str]) -> BadRequest:
    return BadRequest(
        f"'{name}' has an unknown value {value!r}; expected one of {', '.join(sorted(allowed))}."
    )


def choice(allowed: frozenset[str]) -> Parsed:
    """One value of a closed list."""

    def check(raw: str, info: ValidationInfo) -> str:
        if raw not in allowed:
            raise _unknown(info.field_name, raw, allowed)
        return raw

    return Parsed(check, {"type": "string", "enum": sorted(allowed)})


def _nonempty(values: list[str]) -> list[str] | None:
    return [v for v in values if v != ""] or None


def any_of(allowed: frozenset[str]) -> Parsed:
    """Values of a closed list, repeated or comma-joined."""

    def check(values: list[str], info: ValidationInfo) -> list[str] | None:
        parts = [p.strip() for v in values for p in v.split(",") if p.strip()]
        for value in parts:
            if value not in allowed:
                raise _unknown(info.field_name, value, allowed)
        return parts or None

    return Parsed(check, {"type": "array", "items": {"type": "string", "enum": sorted(allowed)}})


Text = Annotated[str | None, WithJsonSchema({"type": "string"})]
Required = Annotated[str, BeforeValidator(_required), WithJsonSchema({"type": "string"})]
Many = Annotated[
    list[str] | None,
    BeforeValidator(_nonempty),
    WithJsonSchema({"type": "array", "items": {"type": "string"}}),
]
Flag = Annotated[bool, BeforeValidator(_flag), WithJsonSchema({"type": "boolean"})]
Time = Annotated[datetime | None, BeforeValidator(_time), WithJsonSchema(TIME_SCHEMA)]
_LIMIT_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
_OFFSET_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
Limit = Annotated[
    int, BeforeValidator(_limit), WithJsonSchema(_LIMIT_SCHEMA), Field(description="Page size.")
]
Offset = Annotated[int, BeforeValidator(_offset), WithJsonSchema(_OFFSET_SCHEMA)]


def upper_bound(value: datetime | None) -> datetime | None:
    """An inclusive upper bound given to the millisecond covers that whole millisecond.

    Timestamps are reported to the millisecond but stored to the microsecond, so
    `end_time=<a task's created_at>` must still match that task.
    """
    if value is None or value.microsecond % 1000:
        return value
    return value + _REST_OF_MILLISECOND


def _unless(first: str) -> Parsed:
    """A synonym of `first`: read only when `first` is not given."""

    def check(raw: str, info: ValidationInfo) -> datetime | None:
        return None if info.data.get(first) is not None else _time(raw, info)

    return Parsed(check, TIME_SCHEMA)


def _at(text: str) -> Any:
    return Field(None, description=f"{text} {TIME_NOTE}")


class TaskListQuery(Query):
    type: Annotated[str | None, choice(TASK_TYPES)] = Field(None, description="Task type.")
    project: Text = Field(None, description="Project name; an unknown one matches nothing.")
    batch: Text = Field(None, description="Batch name; an unknown one matches nothing.")
    status: Annotated[list[str] | None, any_of(STATUSES)] = Field(
        None, description="Any of; comma lists too."
    )
    start_time: Time = _at("Created at or after.")
    created_after: Annotated[datetime | None, _unless("start_time")] = _at("Same as start_time.")
    end_time: Time = _at("Created at or before.")
    created_before: Annotated[datetime | None, _unless("end_time")] = _at("Same as end_time.")
    completed_after: Time = _at("Completed at or after.")
    completed_before: Time = _at("Completed at or before.")
    updated_after: Time = _at("Updated at or after.")
    updated_before: Time = _at("Updated at or before.")
    customer_review_status: Annotated[list[str] | None, any_of(REVIEW_STATUSES)] = Field(
        None, description="Any of; comma lists too (the SDK comma-joins them)."
    )
    unique_id: Many = Field(None, description="Any of these unique_ids.")
    tags: Many = Field(None, description="Tasks that carry every tag given.")
    limit: Limit = MAX_LIMIT
    limited_response: Flag = Field(
        False, description="Only task_id, status, metadata, project. " + BOOL_NOTE
    )
    include_attachment_url: Flag = Field(
        False, description="Accepted (the SDK always sends it); no effect. " + BOOL_NOTE
    )
    next_token: Text = Field(None, description="From the previous page; opaque and signed.")

    def filters(self) -> TaskFilters:
        return TaskFilters(
            project=self.project,
            batch=self.batch,
            statuses=self.status,
            type=self.type,
            created_after=self.start_time or self.created_after,
            created_before=upper_bound(self.end_time or self.created_before),
            completed_after=self.completed_after,
            completed_before=upper_bound(self.completed_before),
            updated_after=self.updated_after,
            updated_before=upper_bound(self.updated_before),
            review_statuses=self.customer_review_status,
            unique_ids=self.unique_id,
            tags=self.tags,
        )


class BatchListQuery(Query):
    status: Annotated[str | None, choice(BATCH_STATUSES)] = Field(None, description="Batch status.")
    limit: Limit = MAX_LIMIT
    offset: Offset = Field(0, description="Rows to skip.")
    exclude_archived: Flag = Field(
        False, description="Accepted; batches are never archived here. " + BOOL_NOTE
    )
    project: Text = Field(None, description="Project name.")
    start_time: Time = _at("Created at or after.")
    end_time: Time = _at("Created at or before.")


class CancelQuery(Query):
    clear_unique_id: Flag = Field(
        False, description="Also clear the task's unique_id. " + BOOL_NOTE
    )


class WorkQuery(Query):
    email: Required = Field(description="A teammate's e-mail.")
