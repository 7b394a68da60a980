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


def several(allowed: frozenset[str], text: str) -> Any:
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

    schema = {"type": "array", "items": {"type": "string", "enum": sorted(allowed)}}
    doc = Field(frozenset(), description=text + " Repeated, or a comma list.")
    return Annotated[frozenset[str], BeforeValidator(check), WithJsonSchema(schema), doc]


def expand(*allowed: str) -> Any:
    return several(frozenset(allowed), "Objects to return whole instead of their id.")


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
Opts = several(OPTIONS, "Extra details in each task.")


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
    expand: expand("project", "batch")  # type: ignore[valid-type]
    opts: Opts  # type: ignore[valid-type]


class TasksQuery(Paged, ByBatch, ByProject):
    expand: expand("project", "batch")  # type: ignore[valid-type]
    opts: Opts  # type: ignore[valid-type]
    status: choice(TASK_STATUSES) = _id("Task status.")  # type: ignore[valid-type]
    completed_after: Time
    completed_before: Time


class AnnotationQuery(Query):
    annotation_id: Required = Field(description="The annotation's id.")


class SchemaQuery(Query):
    schema_id: Required = Field(description="24 hex digits.")


class BatchQuery(ByBatch):
    expand: expand("project")  # type: ignore[valid-type]


class BatchesQuery(Paged, ByProject):
    expand: expand("project")  # type: ignore[valid-type]
    status: choice(BATCH_STATUSES) = _id("Batch status.")  # type: ignore[valid-type]
    created_after: Time
    created_before: Time
    completed_after: Time
    completed_before: Time


class ProjectsQuery(Query):
    created_after: Time
    created_before: Time


class DeliveriesQuery(ByProject):
    expand: expand("project")  # type: ignore[valid-type]
    delivered_after: Time
    delivered_before: Time


class DeliveryQuery(Paged, ByProject):
    expand: expand("project", "batch", "delivery")  # type: ignore[valid-type]
    opts: Opts  # type: ignore[valid-type]
    delivery_id: Text = _id("The delivery's id.")
    delivery_name: Text = _id("The delivery's name (with a project).")


class DeliveryTasksQuery(Paged, ByProject):
    delivery_id: Text = _id("Only the tasks of this delivery.")
    status: choice(TASK_STATUSES) = _id("Task status.")  # type: ignore[valid-type]
    completed_after: Time
    completed_before: Time


class DatasetDeliveriesQuery(Query):
    expand: expand("dataset")  # type: ignore[valid-type]
    dataset_id: Text = _id("The dataset's id (a project's datasetId).")
    delivered_after: Time
    delivered_before: Time


class DatasetDeliveryQuery(Paged):
    expand: expand("dataset", "delivery")  # type: ignore[valid-type]
    delivery_id: Required = Field(description="The delivery's id.")


class DatasetTasksQuery(DatasetDeliveriesQuery, Paged):
    expand: expand("dataset", "delivery")  # type: ignore[valid-type]
    delivery_id: Text = _id("Only the tasks of this delivery.")


class DatasetTaskQuery(Query):
    expand: expand("dataset", "delivery")  # type: ignore[valid-type]
    task_id: Required = Field(description="The task's id.")


class Pager:
    """Keyset paging with signed, opaque `next_token`s (taskhook/cursor.py), bound to the
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
