"""Query strings of the v2 endpoints, as the SDK's `client.v2` sends them, as query models
(routes.py).

Values are percent-encoded (aiohttp decodes them); `expand` and `opts` repeat
(`expand=project&expand=batch`; a comma list is accepted too); datetimes come as
`2024-01-02T03:04:05.678901` (no offset: UTC) or with `+0000`; `limit` is 1 to 100. An empty
value counts as absent. An unknown value of a closed list is a 400 naming the parameter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from aiohttp import web
from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema

from taskhook.core import cursor
from taskhook.core.appkeys import TOKEN_KEY, principal
from taskhook.core.errors import BadRequest
from taskhook.core.models_v2 import BATCH_STATUSES, OPTIONS, TASK_STATUSES
from taskhook.core.responses import ok
from taskhook.core.store.v2 import Cursor
from taskhook.core.validation import parse_time
from taskhook.receiver.v1.params import (
    MAX_LIMIT,
    TIME_NOTE,
    TIME_SCHEMA,
    Limit,
    Parsed,
    Query,
    Required,
    Text,
    choice,
)
from taskhook.v2.serialize import dump

TASK_EXPAND = frozenset({"project", "batch"})
DELIVERY_EXPAND = frozenset({"project", "batch", "delivery"})
PROJECT_EXPAND = frozenset({"project"})
DATASET_EXPAND = frozenset({"dataset"})
DATASET_TASK_EXPAND = frozenset({"dataset", "delivery"})
_REST_OF_MILLISECOND = timedelta(microseconds=999)
_LIST = "Repeated, or a comma list."


def several(allowed: frozenset[str]) -> Parsed:
    """Values of a closed list, repeated or comma-joined."""

    def check(values: list[str], info: ValidationInfo) -> frozenset[str]:
        found = {p.strip() for v in values for p in v.split(",") if p.strip()}
        unknown = found - allowed
        if unknown:
            raise BadRequest(
                f"'{info.field_name}' has unknown values {sorted(unknown)}; expected any of "
                f"{', '.join(sorted(allowed))}."
            )
        return frozenset(found)

    return Parsed(check, {"type": "array", "items": {"type": "string", "enum": sorted(allowed)}})


_EXPAND: Any = Field(
    frozenset(), description="Objects to return whole instead of their id. " + _LIST
)
TaskExpand = Annotated[frozenset[str], several(TASK_EXPAND), _EXPAND]
DeliveryExpand = Annotated[frozenset[str], several(DELIVERY_EXPAND), _EXPAND]
ProjectExpand = Annotated[frozenset[str], several(PROJECT_EXPAND), _EXPAND]
DatasetExpand = Annotated[frozenset[str], several(DATASET_EXPAND), _EXPAND]
DatasetTaskExpand = Annotated[frozenset[str], several(DATASET_TASK_EXPAND), _EXPAND]
Opts = Annotated[
    frozenset[str],
    several(OPTIONS),
    Field(frozenset(), description="Extra details in each task. " + _LIST),
]
TaskStatusParam = Annotated[str | None, choice(TASK_STATUSES)]
BatchStatusParam = Annotated[str | None, choice(BATCH_STATUSES)]


def _time(raw: str, info: ValidationInfo) -> datetime:
    """Bounds are exclusive. Times are shown to the millisecond but stored to the
    microsecond, so an `..._after` bound given to the millisecond means after that whole
    millisecond: `created_after=<a batch's created_at>` leaves that batch out."""
    name = str(info.field_name)
    value = parse_time(raw, name)
    if name.endswith("_after") and value.microsecond % 1000 == 0:
        value += _REST_OF_MILLISECOND
    return value


Time = Annotated[
    datetime | None,
    BeforeValidator(_time),
    WithJsonSchema(TIME_SCHEMA),
    Field(None, description=TIME_NOTE),
]


def _id(text: str) -> Any:
    return Field(None, description=text)


class Paged(Query):
    limit: Limit = MAX_LIMIT
    next_token: Text = _id("From the previous page; opaque and signed.")


class ByProject(Query):
    project_id: Text = _id("The project's id.")
    project_name: Text = _id("The project's name.")


class ByBatch(Query):
    batch_id: Text = _id("The batch's id.")
    batch_name: Text = _id("The batch's name.")


class TaskQuery(Query):
    task_id: Required = Field(description="The task's id.")
    expand: TaskExpand
    opts: Opts


class TasksQuery(Paged, ByBatch, ByProject):
    expand: TaskExpand
    opts: Opts
    status: TaskStatusParam = _id("Task status.")
    completed_after: Time
    completed_before: Time


class AnnotationQuery(Query):
    annotation_id: Required = Field(description="The annotation's id.")


class SchemaQuery(Query):
    schema_id: Required = Field(description="24 hex digits.")


class BatchQuery(ByBatch):
    expand: ProjectExpand


class BatchesQuery(Paged, ByProject):
    expand: ProjectExpand
    status: BatchStatusParam = _id("Batch status.")
    created_after: Time
    created_before: Time
    completed_after: Time
    completed_before: Time


class ProjectsQuery(Query):
    created_after: Time
    created_before: Time


class DeliveriesQuery(ByProject):
    expand: ProjectExpand
    delivered_after: Time
    delivered_before: Time


class DeliveryQuery(Paged, ByProject):
    expand: DeliveryExpand
    opts: Opts
    delivery_id: Text = _id("The delivery's id.")
    delivery_name: Text = _id("The delivery's name (with a project).")


class DeliveryTasksQuery(Paged, ByProject):
    delivery_id: Text = _id("Only the tasks of this delivery.")
    status: TaskStatusParam = _id("Task status.")
    completed_after: Time
    completed_before: Time


class DatasetDeliveriesQuery(Query):
    expand: DatasetExpand
    dataset_id: Text = _id("The dataset's id (a project's datasetId).")
    delivered_after: Time
    delivered_before: Time


class DatasetDeliveryQuery(Paged):
    expand: DatasetTaskExpand
    delivery_id: Required = Field(description="The delivery's id.")


class DatasetTasksQuery(DatasetDeliveriesQuery, Paged):
    expand: DatasetTaskExpand
    delivery_id: Text = _id("Only the tasks of this delivery.")


class DatasetTaskQuery(Query):
    expand: DatasetTaskExpand
    task_id: Required = Field(description="The task's id.")


class Pager:
    """Keyset paging with signed, opaque `next_token`s (taskhook/core/cursor.py), bound to the
    account, the world and the list (a token of one list is refused by another)."""

    def __init__(self, request: web.Request, kind: str, query: Paged) -> None:
        who = principal(request)
        self.key = request.app[TOKEN_KEY]
        self.scope = f"v2:{kind}|{who.account_id}|{who.is_test}"
        self.limit = query.limit
        token = query.next_token
        self.after: Cursor = cursor.decode(self.key, self.scope, token) if token else None

    def page(
        self, rows: list[Any], key: tuple[str, str] = ("created_at", "id")
    ) -> tuple[list[Any], str | None]:
        """Rows fetched with limit + 1: this page, and the token of the next one (None on the
        last page: `next_token` is then left out, never `""`)."""
        if len(rows) <= self.limit:
            return rows, None
        rows = rows[: self.limit]
        last = rows[-1]
        return rows, cursor.encode(self.key, self.scope, last[key[0]], last[key[1]])


def reply(model: Any, options: frozenset[str] = frozenset()) -> web.Response:
    return ok(dump(model, options))
