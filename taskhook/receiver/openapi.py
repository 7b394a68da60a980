"""The OpenAPI 3.1 description of every receiver endpoint, served at `GET /openapi.json`.

Request bodies come from the pydantic models that validate them (taskhook/models.py,
the account models, the ingest `Event`, taskhook/v2/models.py); v1 response shapes are
TypedDicts here and v2 replies are the v2 models they are dumped from, all turned into JSON
Schema by pydantic's TypeAdapter. Rules that are enforced outside pydantic (validation.py,
tasktypes.py, listparams.py, v2/ingest.py) are added to those schemas as constraints, so
the document says what the server really accepts and answers. A route added to the app
must be added here too: tests/test_openapi.py compares the two.

tests/test_openapi.py checks that this document and the aiohttp router agree, that the
document is valid OpenAPI 3.1, and fuzzes every operation against a live server.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
from typing import Annotated, Any, Literal, NotRequired

from aiohttp import web
from pydantic import ConfigDict, TypeAdapter, WithJsonSchema, with_config
from pydantic.json_schema import JsonSchemaMode
from typing_extensions import TypedDict

from taskhook import __version__
from taskhook.core import models_v2 as v2
from taskhook.core.events import MAX_EVENTS, Event
from taskhook.core.models import (
    AuditRequest,
    BatchCreate,
    BatchGroups,
    BatchPriorities,
    FileImport,
    ProjectCreate,
    ProjectGroupCreate,
    ProjectGroupUpdate,
    StudioAssignmentChange,
    TaskCreate,
    TeamChange,
    UniqueIdRequest,
)
from taskhook.core.models_v2 import Annotation as V2Annotation
from taskhook.core.tasktypes import REQUIRED, TASK_TYPES
from taskhook.core.validation import (
    EARLIEST_STORED,
    LATEST_STORED,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_UNIQUE_ID_CHARS,
)
from taskhook.receiver.idempotency import MAX_KEY_CHARS
from taskhook.receiver.v1.account_api import AccountSettings, Rotation
from taskhook.receiver.v1.params import MAX_LIMIT, MAX_OFFSET, REVIEW_STATUSES, STATUSES
from taskhook.receiver.v1.quality_api import QUALITY_TYPES
from taskhook.web import is_page

routes = web.RouteTableDef()


def is_api_route(path: str) -> bool:
    """False for the Tasks tab's HTML pages (taskhook/web: `/`, `/signin`, `/signout`,
    `/tasks...`, `/static/...`). They are routes of this app but not API (a sign-in session,
    not a key; HTML, not JSON), so this document leaves them out and tests/test_openapi.py
    does not look for them here."""
    return not is_page(path)


# v2 request and reply models (issue 8), documented from the models that build the replies.
V2_MODELS = (
    v2.CreateChatTaskRequest,
    v2.SetTaskMetadataRequest,
    v2.CreateBatchRequest,
    v2.BatchOperationRequest,
    v2.SetBatchMetadataRequest,
    v2.TaskOut,
    v2.GetTasksResponse,
    v2.BatchOut,
    v2.GetBatchesResponse,
    v2.BatchActionResponse,
    v2.ProjectOut,
    v2.GetProjectsResponse,
    v2.GetDeliveriesResponse,
    v2.GetDeliveredTasksResponse,
    v2.GetDeliveryTasksResponse,
    v2.GetSchemaResponse,
    v2.DatasetTaskOut,
    v2.GetDatasetsResponse,
    v2.GetDatasetDeliveriesResponse,
    v2.GetDatasetDeliveryResponse,
    v2.GetDatasetTasksResponse,
)

REF = "#/components/schemas/{model}"
JSON = "application/json"
_FORBID = ConfigDict(extra="forbid")

# --- response shapes ------------------------------------------------------------------------

Timestamp = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2016-06-23T09:09:34.752Z"]}
    ),
]
TaskType = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(TASK_TYPES)})]
TaskStatus = Literal["pending", "completed", "canceled", "error"]
ReviewStatus = Literal["pending", "accepted", "fixed", "rejected", "commented"]


@with_config(_FORBID)
class Audit(TypedDict):
    """One review of a task: a customer's accept, reject or fix, or a fix by Scale."""

    audited_by: str
    audited_at: Timestamp
    audit_result: Literal["accepted", "rejected", "fixed"]
    audit_source: Literal["customer", "scale"]
    audit_time_secs: NotRequired[int | float]


@with_config(_FORBID)
class Task(TypedDict):
    """A task as `GET /v1/task/{task_id}` returns it. Keys marked optional are present only
    while they hold a value (Scale's SDK tests check, e.g., that a new task has no `tags`)."""

    task_id: str
    type: TaskType
    status: TaskStatus
    project: str | None
    instruction: str | None
    callback_url: str | None
    params: dict[str, Any]
    metadata: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    audits: list[Audit]
    project_param_version: int | None
    work_started: bool
    is_test: bool
    completed_at: NotRequired[Timestamp]
    batch: NotRequired[str]
    response: NotRequired[dict[str, Any]]
    callback_succeeded: NotRequired[bool]
    customer_review_status: NotRequired[ReviewStatus]
    customer_review_comments: NotRequired[list[str]]
    prior_responses: NotRequired[list[dict[str, Any] | None]]
    unique_id: NotRequired[str]
    tags: NotRequired[list[str]]
    priority: NotRequired[int]
    times_redone: NotRequired[int]


@with_config(_FORBID)
class LimitedTask(TypedDict):
    """A task in a `limited_response=true` listing."""

    task_id: str
    status: TaskStatus
    metadata: dict[str, Any]
    project: str | None


@with_config(_FORBID)
class TaskList(TypedDict):
    """Keyset paging, newest first; `next_token` is present exactly when `has_more`."""

    docs: list[Task | LimitedTask]
    total: int
    limit: int
    offset: Literal[0]
    has_more: bool
    next_token: NotRequired[str]


@with_config(_FORBID)
class Batch(TypedDict):
    name: str
    project: str
    status: Literal["staging", "in_progress", "completed"]
    callback: str
    calibration_batch: bool
    self_label_batch: bool
    metadata: dict[str, Any]
    created_at: Timestamp


@with_config(_FORBID)
class BatchList(TypedDict):
    """Offset paging, as the SDK's `batches()` reads it (`totalDocs`, not `total`)."""

    docs: list[Batch]
    totalDocs: int
    limit: int
    offset: int
    has_more: bool


@with_config(_FORBID)
class BatchStatus(TypedDict):
    status: Literal["staging", "in_progress", "completed"]
    pending: int
    completed: int
    error: int
    canceled: int


@with_config(_FORBID)
class Project(TypedDict):
    """`param_history` entries are the params given, plus `version` and `created_at`."""

    name: str
    type: TaskType
    param_history: list[dict[str, Any]]
    rapid: bool
    studio: bool
    created_at: Timestamp
    datasetId: NotRequired[str]


@with_config(_FORBID)
class Teammate(TypedDict):
    email: str
    role: Literal["labeler", "member", "manager", "admin"]
    company: str
    firstName: None
    lastName: None
    isStudioLabeler: bool
    expiry: None


@with_config(_FORBID)
class StudioWorker(TypedDict):
    id: str
    email: str


@with_config(_FORBID)
class StudioProjectGroup(TypedDict):
    id: str
    name: str
    numWorkers: int
    isSingleton: bool
    workers: list[StudioWorker]


@with_config(_FORBID)
class StudioBatch(TypedDict):
    id: str
    name: str
    projectId: str
    projectName: str
    batchType: Literal["Production"]
    studioPriority: int | None
    total: int
    completed: int
    groups: list[str]


@with_config(_FORBID)
class StudioWork(TypedDict):
    batch: str
    project: str
    studioPriority: int | None
    pending: int


@with_config(_FORBID)
class QualityTask(TypedDict):
    """An evaluation or training task: a task's params with the answer it expects."""

    id: str
    type: TaskType
    project: str
    instruction: str | None
    params: dict[str, Any]
    expected_response: dict[str, Any]
    metadata: dict[str, Any]
    created_at: Timestamp
    initial_response: NotRequired[dict[str, Any]]


@with_config(_FORBID)
class TaskTemplate(TypedDict):
    id: str
    version: int
    created_at: Timestamp
    updated_at: Timestamp
    template_variables: dict[str, Any]
    auto_onboard_enabled: bool
    response_schema: NotRequired[Any]


@with_config(_FORBID)
class File(TypedDict):
    """A stored file. `attachment_url` serves its bytes with no API key (the URL carries an
    unguessable token), so it can be a task's `attachment`."""

    id: str
    attachment_url: str
    display_name: str | None
    project_name: str | None
    reference_id: str | None
    metadata: dict[str, Any]
    mimetype: str
    size: int
    sha256: str
    created_at: Timestamp


@with_config(_FORBID)
class Account(TypedDict):
    account_id: str
    name: str
    default_callback_url: str | None


@with_config(_FORBID)
class Attempt(TypedDict):
    attempt: int
    started_at: Timestamp
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str


@with_config(_FORBID)
class Delivery(TypedDict):
    delivery_id: int
    trigger: Literal[
        "completed", "error", "audit", "fixed", "recalled", "resend", "batch_completed"
    ]
    state: Literal["pending", "sending", "succeeded", "failed"]
    created_at: Timestamp
    attempts: list[Attempt]


@with_config(_FORBID)
class CallbackList(TypedDict):
    """A task's callback deliveries, oldest first, with every attempt."""

    task_id: str
    deliveries: list[Delivery]


@with_config(_FORBID)
class BatchCallbackList(TypedDict):
    """A batch's callback deliveries: one once it completes, if it has a callback."""

    batch: str
    deliveries: list[Delivery]


@with_config(_FORBID)
class Resent(TypedDict):
    task_id: str
    delivery_id: int
    state: Literal["pending"]


@with_config(_FORBID)
class EventResult(TypedDict):
    event_id: str
    status: Literal["applied", "duplicate", "rejected"]
    error: NotRequired[str]


@with_config(_FORBID)
class IngestReply(TypedDict):
    """One result per event, in input order."""

    results: list[EventResult]


@with_config(_FORBID)
class Health(TypedDict):
    status: Literal["ok"]


@with_config(_FORBID)
class Ready(TypedDict):
    status: Literal["ready"]


@with_config(_FORBID)
class Error(TypedDict):
    """Every error: the HTTP status again, and a message that says what and where."""

    status_code: int
    error: str


@with_config(_FORBID)
class RotatedSecret(TypedDict):
    """The new signing secret, shown once."""

    signing_secret: str
    previous_secret_valid_until: Timestamp | None


# (component name, pydantic mode, type): requests as validated, responses as dumped. The v2
# models validate what v2 replies are dumped from (taskhook/v2/models.py), so their
# validation schema is the shape of the reply.
_MODELS: tuple[tuple[str, JsonSchemaMode, Any], ...] = (
    ("TaskCreate", "validation", TaskCreate),
    ("AuditRequest", "validation", AuditRequest),
    ("UniqueIdRequest", "validation", UniqueIdRequest),
    ("BatchCreate", "validation", BatchCreate),
    ("ProjectCreate", "validation", ProjectCreate),
    ("AccountSettings", "validation", AccountSettings),
    ("Rotation", "validation", Rotation),
    ("Event", "validation", Event),
    ("FileImport", "validation", FileImport),
    ("TeamChange", "validation", TeamChange),
    ("StudioAssignmentChange", "validation", StudioAssignmentChange),
    ("ProjectGroupCreate", "validation", ProjectGroupCreate),
    ("ProjectGroupUpdate", "validation", ProjectGroupUpdate),
    ("BatchGroups", "validation", BatchGroups),
    ("BatchPriorities", "validation", BatchPriorities),
    *(
        (name, "serialization", model)
        for name, model in (
            ("Task", Task),
            ("LimitedTask", LimitedTask),
            ("TaskList", TaskList),
            ("Batch", Batch),
            ("BatchList", BatchList),
            ("BatchStatus", BatchStatus),
            ("Project", Project),
            ("File", File),
            ("TaskTemplate", TaskTemplate),
            ("QualityTask", QualityTask),
            ("Teammate", Teammate),
            ("StudioProjectGroup", StudioProjectGroup),
            ("StudioBatch", StudioBatch),
            ("StudioWork", StudioWork),
            ("Account", Account),
            ("RotatedSecret", RotatedSecret),
            ("CallbackList", CallbackList),
            ("BatchCallbackList", BatchCallbackList),
            ("Resent", Resent),
            ("IngestReply", IngestReply),
            ("Health", Health),
            ("Ready", Ready),
            ("Error", Error),
        )
    ),
    *((model.__name__, "validation", model) for model in V2_MODELS),
    ("V2Annotation", "validation", V2Annotation),
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _pydantic_schemas() -> dict[str, Any]:
    """Every model above as a component schema, with the models they nest."""
    inputs = [(name, mode, TypeAdapter(tp)) for name, mode, tp in _MODELS]
    roots, top = TypeAdapter.json_schemas(inputs, ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    for (name, _mode), schema in roots.items():
        if schema != _ref(name):  # not a model (a union): its schema is inline
            schemas[name] = schema
    return schemas


# --- rules enforced outside pydantic, added to the generated schemas -------------------------

TAG_ITEM = {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS, "pattern": r"\S"}
UNIQUE_ID = {"type": "string", "minLength": 1, "maxLength": MAX_UNIQUE_ID_CHARS}
NON_EMPTY = {"not": {"enum": [None, "", [], {}]}}
TAGS_NOTE = f"At most {MAX_TAGS} distinct tags; order kept, duplicates ignored."
METADATA_NOTE = "A JSON object of at most 10 KB (serialized)."
CALLBACK_NOTE = (
    "An http(s) URL, or an e-mail address when the server has SMTP configured. A literal "
    "non-public address is refused unless TASKHOOK_ALLOW_PRIVATE_TARGETS is set."
)


def _refine(schema: dict[str, Any], prop: str, **rules: Any) -> None:
    """Add rules to a property, inside its non-null branch when it is `X | None`."""
    target = schema["properties"][prop]
    for branch in target.get("anyOf", []):
        if branch.get("type") != "null":
            target = branch
            break
    target.update(rules)


def _refine_request_schemas(schemas: dict[str, Any]) -> None:
    task = schemas["TaskCreate"]
    task["description"] = (
        "The fields every task type shares. Any other key is a type-specific parameter "
        "and is stored in the task's `params`."
    )
    _refine(task, "unique_id", **UNIQUE_ID)
    _refine(task, "tags", items=TAG_ITEM, description=TAGS_NOTE)
    _refine(task, "metadata", description=METADATA_NOTE)
    _refine(task, "callback_url", description=CALLBACK_NOTE)
    _refine(schemas["UniqueIdRequest"], "unique_id", **UNIQUE_ID)
    _refine(schemas["BatchCreate"], "callback", description=CALLBACK_NOTE)
    _refine(schemas["BatchCreate"], "metadata", description=METADATA_NOTE)
    _refine(schemas["ProjectCreate"], "type", enum=sorted(TASK_TYPES))
    _refine(
        schemas["AccountSettings"],
        "default_callback_url",
        description=CALLBACK_NOTE + " null clears the default.",
    )
    event = schemas["Event"]
    _refine(
        event,
        "occurred_at",
        description="When it happened (default: when it is received); from "
        f"{EARLIEST_STORED.date()} up to {LATEST_STORED.date()} in UTC.",
    )
    event["allOf"] = _event_rules(event["properties"])
    task_list = schemas["TaskList"]
    task_list["if"] = {"properties": {"has_more": {"const": True}}, "required": ["has_more"]}
    task_list["then"] = {"required": ["next_token"]}
    task_list["else"] = {"not": {"required": ["next_token"]}}


def _when(types: list[str], then: dict[str, Any], otherwise: list[str]) -> dict[str, Any]:
    """Event types `types` need `then`; the others may not carry the fields `otherwise`."""
    rule = {"if": {"properties": {"type": {"enum": types}}, "required": ["type"]}, "then": then}
    if otherwise:
        rule["else"] = {"properties": {name: {"type": "null"} for name in otherwise}}
    return rule


def _both(*fields: str) -> dict[str, Any]:
    return {"required": list(fields), "properties": {f: {"not": {"type": "null"}} for f in fields}}


def _event_rules(props: dict[str, Any]) -> list[dict[str, Any]]:
    """What each event type needs and may carry (events.py; v2/ingest.py for the v2 fields:
    results as `threads` or `sensitive_content_reports` instead of `response`, v2 `errors`,
    and `task.delivered`)."""
    results: list[dict[str, Any]] = [
        {"required": ["response"], "properties": {"response": {"type": "object"}}}
    ]
    error: list[dict[str, Any]] = [
        {"required": ["error"], "properties": {"error": {"type": "string", "minLength": 1}}}
    ]
    v2_results = [f for f in ("threads", "sensitive_content_reports") if f in props]
    for field, model, least in (
        ("threads", "Thread", 0),
        ("sensitive_content_reports", "SensitiveContentReport", 1),
        ("errors", "ErrorDetail", 1),
    ):
        if field in props:  # validated with the v2 models at ingest
            _refine({"properties": props}, field, items=_ref(model))
            listed = {"type": "array", "items": _ref(model), "minItems": least}
            alternative = {"required": [field], "properties": {field: listed}}
            (error if field == "errors" else results).append(alternative)
    one_result: dict[str, Any] = {"anyOf": results}
    if v2_results:  # one form of the results, not two
        pairs = [_both("response", f) for f in v2_results]
        if len(v2_results) == 2:
            pairs.append(_both(*v2_results))
        one_result["not"] = {"anyOf": pairs}
    rules = [
        _when(["task.completed", "task.fixed"], one_result, v2_results),
        _when(["task.errored"], {"anyOf": error}, ["errors"] if "errors" in props else []),
    ]
    if "delivery_name" in props:
        delivered = {"required": ["delivery_name"], "properties": {"delivery_name": {}}}
        rules.append(_when(["task.delivered"], delivered, ["delivery_name"]))
    return rules


# Loose shapes of the parameters each task type requires (tasktypes.REQUIRED); the server
# checks only that they are present and not empty.
_PARAM_SHAPES: dict[str, dict[str, Any]] = {
    "attachment": {"type": "string", "minLength": 1, "description": "URL or text to work on."},
    "attachments": {"type": "array", "minItems": 1},
    "text": {"type": "string", "minLength": 1},
    "instruction": {"type": "string", "minLength": 1, "maxLength": 100_000},
    "categories": {"type": "array", "minItems": 1},
    "choices": {"type": "array", "minItems": 1},
    "objects_to_annotate": {"type": "array", "minItems": 1},
    "geometries": {"type": "object", "minProperties": 1},
    "labels": {"type": "array", "minItems": 1},
    "features": {"type": "array", "minItems": 1},
}


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an `X | None` property schema."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    return dict(branches[0])


def _param_shape(name: str) -> dict[str, Any]:
    return dict(_PARAM_SHAPES.get(name, NON_EMPTY))


def _create_schema(base: dict[str, Any], task_type: str) -> dict[str, Any]:
    """TaskCreate plus what `task_type` requires: one name of each group of alternatives
    (`project` and `batch` are optional)."""
    schema = copy.deepcopy(base)
    schema["title"] = f"{task_type} task"
    schema["description"] = (
        f"Creates a {task_type} task. {base['description']} Required parameters may also "
        "come from the project's current params."
    )
    required: list[str] = []
    choices: list[tuple[str, ...]] = []
    for alternatives in REQUIRED[task_type]:
        for name in alternatives:
            schema["properties"][name] = _param_shape(name)
        if len(alternatives) == 1:
            required.append(alternatives[0])
        else:
            choices.append(alternatives)
    if required:
        schema["required"] = required
    if choices:
        schema["anyOf"] = [
            {
                "required": list(pick),
                "properties": {name: _non_null(schema["properties"][name]) for name in pick},
            }
            for pick in itertools.product(*choices)
        ]
    return schema


def _create_schema_name(task_type: str) -> str:
    return f"{task_type}TaskCreate"


# --- parameters, headers and responses -------------------------------------------------------


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


TASK_ID = _path("task_id", "The task's id (`task_id`).")
BATCH_NAME = _path("name", "The batch name (percent-encoded, as the SDK sends it).")
PROJECT_NAME = _path("name", "The project name (percent-encoded, as the SDK sends it).")
BOOL_NOTE = "Also `True`/`False`, `1`/`0`, `yes`/`no` (any case), as the SDK sends them."
TIME = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
}
TIME_NOTE = (
    "ISO 8601: `2024-01-31`, `2024-01-31 12:00:00.000000` or `2024-01-31T12:00:00-07:00`; "
    "no offset means UTC."
)
LIMIT = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": MAX_LIMIT},
    "Page size.",
)
REQUEST_ID_PARAM = {
    "name": "X-Request-Id",
    "in": "header",
    "description": "Echoed back and bound to every log line of the request (first 64 "
    "characters); generated when absent.",
    "schema": {"type": "string"},
}


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": (
        "The first reply (errors included) is kept 24 hours per account, world and key; a "
        "repeat with the same body gets it back (`Idempotent-Replayed: true`) and creates "
        "nothing; another body with the same key is a 409; a repeat while the first still "
        "runs is a 429."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
}
WEBHOOK_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "Standard Webhooks message id.",
        "schema": {"type": "string", "minLength": 1},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Unix seconds; more than 5 minutes from the server's clock is a 401.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": (
            "`v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{raw body}` "
            "under TASKHOOK_INGEST_SECRET (several space-separated signatures are allowed)."
        ),
        "schema": {"type": "string", "minLength": 1},
    },
]


def _header(description: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}, **extra}


HEADERS = {
    "X-Request-Id": _header(
        "The request's id (the client's `X-Request-Id`, else generated); on every log line.",
        required=True,
    ),
    "Retry-After": _header(
        "Seconds to wait before retrying.",
        {"type": "string", "pattern": "^[0-9]+$"},
        required=True,
    ),
    "Idempotent-Replayed": _header(
        "`true` when this is the saved reply to an earlier request with the same Idempotency-Key.",
        {"type": "string", "enum": ["true"]},
    ),
}
REQUEST_ID = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}

ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed or invalid input, or a change the task's state forbids."),
    401: ("Unauthorized", "No valid API key (or, for events, no valid signature)."),
    403: ("Forbidden", "A test key may not change the account (live key needed)."),
    404: ("NotFound", "No such object for this account and world."),
    409: ("Conflict", "A unique_id, name or Idempotency-Key is already used."),
    413: ("PayloadTooLarge", "The body is larger than TASKHOOK_MAX_BODY_BYTES."),
    429: ("TooManyRequests", "The same Idempotency-Key is still being processed; retry."),
    503: (
        "ServiceUnavailable",
        "The database is unavailable, or the receiver is over capacity; retry after Retry-After.",
    ),
}


def _error_response(status: int, description: str) -> dict[str, Any]:
    headers = dict(REQUEST_ID)
    if status in (429, 503):
        headers.update(RETRY_AFTER)
    schema = {"allOf": [_ref("Error")], "properties": {"status_code": {"const": status}}}
    return {"description": description, "headers": headers, "content": {JSON: {"schema": schema}}}


def _ok(schema: dict[str, Any], description: str = "Success.", media: str = JSON) -> dict[str, Any]:
    return {
        "description": description,
        "headers": dict(REQUEST_ID),
        "content": {media: {"schema": schema}},
    }


def _body(schema: dict[str, Any], description: str, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "content": {JSON: {"schema": schema}}}


def _operation(
    op_id: str,
    tag: str,
    summary: str,
    ok: dict[str, Any],
    errors: tuple[int, ...],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    public: bool = False,
    shed: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    codes = set(errors) | {400}  # a NUL in the path or query string is a 400 anywhere
    if not public:
        codes |= {401, 503}  # the API key is looked up in the database
    if shed:
        codes |= {503}  # past its capacity the receiver sheds load (receiver/shedding.py)
    if body is not None:
        codes |= {413}
    responses: dict[str, Any] = {"200": ok}
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    op: dict[str, Any] = {"operationId": op_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    op["parameters"] = [*(parameters or []), {"$ref": "#/components/parameters/X-Request-Id"}]
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses
    if public:
        op["security"] = []
    return op


# --- the paths --------------------------------------------------------------------------------

TAG_NOTE = "A bare JSON array of strings; no body means an empty array."
METADATA_BODY = _body(
    {"type": "object", "description": METADATA_NOTE},
    "The whole new metadata (replaces the old); no body means `{}`.",
    required=False,
)


def _task_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    created = _ok(_ref("Task"), "The task (test keys: already completed).")
    created["headers"] = {
        **REQUEST_ID,
        "Idempotent-Replayed": {"$ref": "#/components/headers/Idempotent-Replayed"},
    }
    for task_type in sorted(TASK_TYPES):
        name = _create_schema_name(task_type)
        schemas[name] = _create_schema(schemas["TaskCreate"], task_type)
        paths[f"/v1/task/{task_type}"] = {
            "post": _operation(
                f"create_{task_type}_task",
                "tasks",
                f"Create a {task_type} task",
                created,
                (409, 429),
                parameters=[IDEMPOTENCY_KEY],
                body=_body(_ref(name), "The task's fields; other keys go into `params`."),
            )
        }
    task = _ok(_ref("Task"))
    tags_set = _body(
        {"type": "array", "items": TAG_ITEM, "description": TAGS_NOTE}, TAG_NOTE, False
    )
    paths["/v1/task/{task_id}"] = {
        "parameters": [TASK_ID],
        "get": _operation("get_task", "tasks", "Get a task", task, (404,)),
    }
    paths["/v1/task/{task_id}/cancel"] = {
        "parameters": [TASK_ID],
        "post": _operation(
            "cancel_task",
            "tasks",
            "Cancel a task",
            task,
            (404,),
            parameters=[
                _query(
                    "clear_unique_id",
                    {"type": "boolean", "default": False},
                    "Also clear the task's unique_id. " + BOOL_NOTE,
                )
            ],
            description=(
                "A pending task whose work has not started, or an already canceled one: 200. "
                "A completed, errored or started task: 400."
            ),
        ),
    }
    paths["/v1/task/{task_id}/audit"] = {
        "parameters": [TASK_ID],
        "post": _operation(
            "audit_task",
            "tasks",
            "Accept, reject or fix a completed task",
            task,
            (404,),
            body=_body(_ref("AuditRequest"), "`accepted: true` with a `response` is a fix."),
        ),
    }
    paths["/v1/task/{task_id}/unique_id"] = {
        "parameters": [TASK_ID],
        "post": _operation(
            "set_task_unique_id",
            "tasks",
            "Set a task's unique_id",
            task,
            (404, 409),
            body=_body(_ref("UniqueIdRequest"), "The new unique_id."),
        ),
        "delete": _operation(
            "clear_task_unique_id", "tasks", "Clear a task's unique_id", task, (404,)
        ),
    }
    paths["/v1/task/{task_id}/setMetadata"] = {
        "parameters": [TASK_ID],
        "post": _operation(
            "set_task_metadata",
            "tasks",
            "Replace a task's metadata",
            task,
            (404,),
            body=METADATA_BODY,
        ),
    }
    paths["/v1/task/{task_id}/tags"] = {
        "parameters": [TASK_ID],
        "post": _operation(
            "set_task_tags", "tasks", "Replace a task's tags", task, (404,), body=tags_set
        ),
        "put": _operation(
            "add_task_tags",
            "tasks",
            "Add tags (present ones are ignored; at most 5 in all)",
            task,
            (404,),
            body=tags_set,
        ),
        "delete": _operation(
            "delete_task_tags",
            "tasks",
            "Remove tags (absent ones are ignored)",
            task,
            (404,),
            body=_body({"type": "array", "items": {"type": "string"}}, TAG_NOTE, False),
        ),
    }
    paths["/v1/task/{task_id}/callbacks"] = {
        "parameters": [TASK_ID],
        "get": _operation(
            "list_task_callbacks",
            "callbacks",
            "A task's callback deliveries and attempts",
            _ok(_ref("CallbackList")),
            (404,),
        ),
    }
    paths["/v1/task/{task_id}/callbacks/resend"] = {
        "parameters": [TASK_ID],
        "post": _operation(
            "resend_task_callback",
            "callbacks",
            "Send the latest callback again, as a new delivery",
            _ok(_ref("Resent")),
            (404,),
        ),
    }
    paths["/v1/tasks"] = {"get": _list_tasks()}
    return paths


def _list_tasks() -> dict[str, Any]:
    def many(name: str, items: dict[str, Any], description: str) -> dict[str, Any]:
        return _query(
            name, {"type": "array", "items": items}, description, style="form", explode=True
        )

    times = [
        ("start_time", "Created at or after."),
        ("end_time", "Created at or before."),
        ("created_after", "Same as start_time."),
        ("created_before", "Same as end_time."),
        ("completed_after", "Completed at or after."),
        ("completed_before", "Completed at or before."),
        ("updated_after", "Updated at or after."),
        ("updated_before", "Updated at or before."),
    ]
    parameters = [
        _query("project", {"type": "string"}, "Project name; an unknown one matches nothing."),
        _query("batch", {"type": "string"}, "Batch name; an unknown one matches nothing."),
        many("status", {"type": "string", "enum": sorted(STATUSES)}, "Any of; comma lists too."),
        _query("type", {"type": "string", "enum": sorted(TASK_TYPES)}, "Task type."),
        *(_query(name, TIME, f"{text} {TIME_NOTE}") for name, text in times),
        many(
            "customer_review_status",
            {"type": "string", "enum": sorted(REVIEW_STATUSES)},
            "Any of; comma lists too (the SDK comma-joins them).",
        ),
        many("unique_id", {"type": "string"}, "Any of these unique_ids."),
        many("tags", {"type": "string"}, "Tasks that carry every tag given."),
        LIMIT,
        _query("next_token", {"type": "string"}, "From the previous page; opaque and signed."),
        _query(
            "limited_response",
            {"type": "boolean", "default": False},
            "Only task_id, status, metadata, project. " + BOOL_NOTE,
        ),
        _query(
            "include_attachment_url",
            {"type": "boolean"},
            "Accepted (the SDK always sends it); no effect. " + BOOL_NOTE,
        ),
    ]
    return _operation(
        "list_tasks",
        "tasks",
        "List tasks, newest first",
        _ok(_ref("TaskList")),
        (),
        parameters=parameters,
        description="Filters on an unknown project or batch match nothing; an unknown status "
        "or type value is a 400; a tampered or foreign `next_token` is a 400.",
    )


def _batch_paths() -> dict[str, Any]:
    batch = _ok(_ref("Batch"))
    batch_status = {"type": "string", "enum": ["completed", "in_progress", "staging"]}
    return {
        "/v1/batches": {
            "post": _operation(
                "create_batch",
                "batches",
                "Create a batch",
                batch,
                (409, 429),
                parameters=[IDEMPOTENCY_KEY],
                body=_body(_ref("BatchCreate"), "The batch; its project must exist."),
            ),
            "get": _operation(
                "list_batches",
                "batches",
                "List batches (offset paging)",
                _ok(_ref("BatchList")),
                (),
                parameters=[
                    _query("project", {"type": "string"}, "Project name."),
                    _query("status", batch_status, "Batch status."),
                    _query("start_time", TIME, "Created at or after. " + TIME_NOTE),
                    _query("end_time", TIME, "Created at or before. " + TIME_NOTE),
                    LIMIT,
                    _query(
                        "offset",
                        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
                        "Rows to skip.",
                    ),
                    _query(
                        "exclude_archived",
                        {"type": "boolean"},
                        "Accepted; batches are never archived here. " + BOOL_NOTE,
                    ),
                ],
            ),
        },
        "/v1/batches/{name}": {
            "parameters": [BATCH_NAME],
            "get": _operation("get_batch", "batches", "Get a batch", batch, (404,)),
        },
        "/v1/batches/{name}/callbacks": {
            "parameters": [BATCH_NAME],
            "get": _operation(
                "list_batch_callbacks",
                "batches",
                "A batch's callback deliveries and their attempts",
                _ok(_ref("BatchCallbackList")),
                (404,),
                description="When a batch with a `callback` completes, one delivery sends "
                "the batch as GET /v1/batches/{name} returns it, signed and retried as "
                "task callbacks are.",
            ),
        },
        "/v1/batches/{name}/status": {
            "parameters": [BATCH_NAME],
            "get": _operation(
                "get_batch_status",
                "batches",
                "A batch's status and task counts",
                _ok(_ref("BatchStatus")),
                (404,),
            ),
        },
        "/v1/batches/{name}/finalize": {
            "parameters": [BATCH_NAME],
            "post": _operation("finalize_batch", "batches", "Finalize a batch", batch, (404,)),
        },
        "/v1/batches/{name}/setMetadata": {
            "parameters": [BATCH_NAME],
            "post": _operation(
                "set_batch_metadata",
                "batches",
                "Replace a batch's metadata",
                batch,
                (404,),
                body=METADATA_BODY,
            ),
        },
    }


FILE_ID = _path("file_id", "The file's id (`id`).")
_UPLOAD_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The file's bytes."},
        "display_name": {"type": "string", "description": "Default: the part's file name."},
        "project_name": {"type": "string", "description": "An existing project."},
        "reference_id": {
            "type": "string",
            "description": "Unique per account and world: a repeat is a 409.",
        },
        "metadata": {"type": "string", "description": "A JSON object, as text."},
    },
}


def _file_paths() -> dict[str, Any]:
    file = _ok(_ref("File"))
    limit = " Larger than TASKHOOK_MAX_FILE_BYTES (80 MB by default): 413."
    return {
        "/v1/files/upload": {
            "post": _operation(
                "upload_file",
                "files",
                "Upload a file (multipart/form-data)",
                file,
                (409,),
                body={
                    "description": "The file as the part `file`, with optional fields." + limit,
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _UPLOAD_FORM}},
                },
            ),
        },
        "/v1/files/import": {
            "post": _operation(
                "import_file",
                "files",
                "Import a file from a URL",
                file,
                (409,),
                body=_body(
                    _ref("FileImport"),
                    "`file_url` is fetched under the callback targets' rules (no private "
                    "address unless TASKHOOK_ALLOW_PRIVATE_TARGETS)." + limit,
                ),
            ),
        },
        "/v1/files/{file_id}": {
            "parameters": [FILE_ID],
            "get": _operation("get_file", "files", "Get a file's metadata", file, (404,)),
        },
        "/files/{file_id}/{token}": {
            "parameters": [FILE_ID, _path("token", "The token of the file's attachment_url.")],
            "get": _operation(
                "get_file_content",
                "files",
                "A file's bytes, behind its attachment_url",
                _ok({"type": "string", "format": "binary"}, media="application/octet-stream"),
                (404,),
                public=True,
            ),
        },
    }


def _team_paths() -> dict[str, Any]:
    team = _ok({"type": "array", "items": _ref("Teammate")}, "The whole team.")
    change = _body(_ref("TeamChange"), "E-mails (at most 100) and the role.")
    live_only = "Changing the account's team needs a live key (a test key: 403)."
    return {
        "/v1/teams": {
            "get": _operation("list_teammates", "teams", "List the account's team", team, ()),
        },
        "/v1/teams/invite": {
            "post": _operation(
                "invite_teammates",
                "teams",
                "Add teammates with a role",
                team,
                (403,),
                body=change,
                description="A teammate already on the team keeps its role. " + live_only,
            ),
        },
        "/v1/teams/set_role": {
            "post": _operation(
                "update_teammates_role",
                "teams",
                "Change teammates' role",
                team,
                (403,),
                body=change,
                description="Every e-mail must be on the team (else 400, nothing changes). "
                + live_only,
            ),
        },
    }


def _studio_paths() -> dict[str, Any]:
    assignments = _ok(
        {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "Every teammate's e-mail with the names of the projects assigned to them.",
    )
    change = _body(_ref("StudioAssignmentChange"), "Teammates' e-mails and project names.")
    group = _ok(_ref("StudioProjectGroup"))
    batches = _ok({"type": "array", "items": _ref("StudioBatch")}, "Open batches, work order.")
    project = _path("project", "The project name (percent-encoded).")

    def op(
        op_id: str, summary: str, ok: dict[str, Any], errors: tuple[int, ...], **kw: Any
    ) -> dict[str, Any]:
        return _operation(op_id, "studio", summary, ok, errors, **kw)

    return {
        "/v1/studio/assignments": {
            "get": op("list_studio_assignments", "List labeler assignments", assignments, ()),
        },
        "/v1/studio/assignments/add": {
            "post": op(
                "add_studio_assignments",
                "Assign teammates to projects",
                assignments,
                (),
                body=change,
            ),
        },
        "/v1/studio/assignments/remove": {
            "post": op(
                "remove_studio_assignments",
                "Unassign teammates (and their groups)",
                assignments,
                (),
                body=change,
            ),
        },
        "/v1/studio/projects/{project}/groups": {
            "parameters": [project],
            "get": op(
                "list_project_groups",
                "List a project's groups",
                _ok({"type": "array", "items": _ref("StudioProjectGroup")}),
                (404,),
            ),
            "post": op(
                "create_project_group",
                "Create a project group",
                group,
                (404, 409),
                body=_body(_ref("ProjectGroupCreate"), "Name and assigned labelers."),
            ),
        },
        "/v1/studio/projects/{project}/groups/{group}": {
            "parameters": [project, _path("group", "The group name (percent-encoded).")],
            "put": op(
                "update_project_group",
                "Add and remove a group's workers",
                group,
                (404,),
                body=_body(_ref("ProjectGroupUpdate"), "E-mails to add, remove."),
            ),
        },
        "/v1/studio/batches": {
            "get": op("list_studio_batches", "List open batches in work order", batches, ()),
        },
        "/v1/studio/batches/{name}": {
            "parameters": [_path("name", "The batch name (percent-encoded).")],
            "put": op(
                "assign_studio_batches",
                "Give a batch to project groups",
                _ok(_ref("StudioBatch")),
                (404,),
                body=_body(_ref("BatchGroups"), "The groups (replaces)."),
            ),
        },
        "/v1/studio/batches/set_priorities": {
            "post": op(
                "set_studio_batches_priorities",
                "Rank batches",
                batches,
                (),
                body=_body(_ref("BatchPriorities"), "Names, first worked first."),
            ),
        },
        "/v1/studio/batches/reset_priorities": {
            "post": op("reset_studio_batches_priorities", "Clear the ranking", batches, ()),
        },
        "/v1/studio/work": {
            "get": op(
                "studio_work",
                "A labeler's queue: the batches they work, in order, with pending tasks",
                _ok({"type": "array", "items": _ref("StudioWork")}),
                (),
                parameters=[
                    _query("email", {"type": "string"}, "A teammate's e-mail.", required=True)
                ],
            ),
        },
    }


def _quality_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    quality = _ok(_ref("QualityTask"))
    listed = _ok({"type": "array", "items": _ref("QualityTask")}, "Oldest first.")
    body = _body(
        {"type": "object", "required": ["project", "expected_response"]},
        "A task create's body for this type, plus `expected_response` (and, for an "
        "evaluation task, an optional `initial_response`).",
    )
    task_type = {
        **_path("type", "The task type."),
        "schema": {"type": "string", "enum": sorted(QUALITY_TYPES)},
    }
    for kind in ("evaluation", "training"):
        paths[f"/v1/{kind}_tasks/{{type}}"] = {
            "parameters": [task_type],
            "post": _operation(
                f"create_{kind}_task", "projects", f"Create a {kind} task", quality, (), body=body
            ),
        }
        paths[f"/v1/projects/{{name}}/{kind}_tasks"] = {
            "parameters": [PROJECT_NAME],
            "get": _operation(
                f"list_{kind}_tasks", "projects", f"List a project's {kind} tasks", listed, (404,)
            ),
        }
    return paths


def _project_paths() -> dict[str, Any]:
    project = _ok(_ref("Project"))
    return {
        "/v1/projects": {
            "post": _operation(
                "create_project",
                "projects",
                "Create a project",
                project,
                (409, 429),
                parameters=[IDEMPOTENCY_KEY],
                body=_body(_ref("ProjectCreate"), "The project; `params` starts its history."),
            ),
            "get": _operation(
                "list_projects",
                "projects",
                "List projects (a bare array)",
                _ok({"type": "array", "items": _ref("Project")}),
                (),
            ),
        },
        "/v1/projects/{name}": {
            "parameters": [PROJECT_NAME],
            "get": _operation("get_project", "projects", "Get a project", project, (404,)),
        },
        "/v1/projects/{name}/taskTemplates": {
            "parameters": [PROJECT_NAME],
            "get": _operation(
                "get_project_template",
                "projects",
                "Get a textcollection or chat project's task template",
                _ok(_ref("TaskTemplate")),
                (404,),
                description="One template per project, made of its current params: "
                "`template_variables` and `response_schema` come from them and `version` is "
                "their version. Other project types: 400.",
            ),
        },
        "/v1/projects/{name}/setParams": {
            "parameters": [PROJECT_NAME],
            "post": _operation(
                "set_project_params",
                "projects",
                "Append a new version of the project's params",
                project,
                (404,),
                body=_body(
                    {"type": "object"},
                    "The new params (defaults for new tasks); `version` and `created_at` are "
                    "set by the server.",
                ),
            ),
        },
    }


def _other_paths() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "/v1/account": {
            "get": _operation(
                "get_account", "account", "The calling account", _ok(_ref("Account")), ()
            ),
        },
        "/v1/account/settings": {
            "post": _operation(
                "set_account_settings",
                "account",
                "Set the account's default callback URL (live key only)",
                _ok(_ref("Account")),
                (403,),
                body=_body(_ref("AccountSettings"), "Used for tasks created without one."),
            ),
        },
        "/v1/account/signing_secret/rotate": {
            "post": _operation(
                "rotate_signing_secret",
                "account",
                "A new callback signing secret (shown once; live key only)",
                _ok(_ref("RotatedSecret")),
                (403,),
                body=_body(
                    _ref("Rotation"),
                    "How long the previous secret keeps signing too (a second signature); "
                    "no body means the default.",
                    required=False,
                ),
            ),
        },
        "/v1/events": {
            "post": _operation(
                "ingest_events",
                "events",
                "Report what happened to tasks (signed workforce events)",
                _ok(_ref("IngestReply")),
                (401, 503),
                public=True,
                parameters=WEBHOOK_HEADERS,
                body=_body(
                    {
                        "oneOf": [
                            _ref("Event"),
                            {
                                "type": "array",
                                "items": _ref("Event"),
                                "minItems": 1,
                                "maxItems": MAX_EVENTS,
                            },
                        ]
                    },
                    f"One event or an array of 1 to {MAX_EVENTS}; an invalid one is a 400 "
                    "and nothing is applied.",
                ),
                description=(
                    "Signed with Standard Webhooks headers under TASKHOOK_INGEST_SECRET, "
                    "verified over the raw body with a 5-minute tolerance; anything else is "
                    "a 401. No API key. One request is one transaction. A rejected event "
                    "(unknown task, wrong state) does not stop the others."
                ),
            ),
        },
        "/healthz": {
            "get": _operation(
                "healthz",
                "operations",
                "Liveness",
                _ok(_ref("Health")),
                (),
                public=True,
                shed=False,
            ),
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "operations",
                "Readiness: the database answers and the dispatcher loop turns (else 503)",
                _ok(_ref("Ready")),
                (503,),
                public=True,
                shed=False,
            ),
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "operations",
                "Prometheus metrics",
                _ok(text, "Prometheus text format.", "text/plain"),
                (),
                public=True,
                shed=False,
            ),
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "operations",
                "This document",
                _ok({"type": "object"}, "OpenAPI 3.1."),
                (),
                public=True,
            ),
        },
    }


def _v2_paths() -> dict[str, Any]:
    """Scale's v2 (issue 8): objects named by id or name in the query string."""

    def q(name: str, text: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return _query(name, schema or {"type": "string"}, text)

    def many(name: str, allowed: frozenset[str], text: str) -> dict[str, Any]:
        items = {"type": "string", "enum": sorted(allowed)}
        schema = {"type": "array", "items": items}
        return _query(
            name, schema, text + " Repeated, or a comma list.", style="form", explode=True
        )

    def expand(*allowed: str) -> dict[str, Any]:
        return many("expand", frozenset(allowed), "Objects to return whole instead of their id.")

    project = [q("project_id", "The project's id."), q("project_name", "The project's name.")]
    batch = [q("batch_id", "The batch's id."), q("batch_name", "The batch's name.")]
    opts = many("opts", v2.OPTIONS, "Extra details in each task.")
    paging = [LIMIT, q("next_token", "From the previous page; opaque and signed.")]
    task_status = q("status", "Task status.", {"type": "string", "enum": sorted(v2.TASK_STATUSES)})

    def times(*names: str) -> list[dict[str, Any]]:
        return [_query(name, TIME, TIME_NOTE) for name in names]

    def get(op_id: str, summary: str, reply: str, parameters: list[Any]) -> dict[str, Any]:
        return {
            "get": _operation(op_id, "v2", summary, _ok(_ref(reply)), (404,), parameters=parameters)
        }

    def post(op_id: str, summary: str, reply: str, body: str, create: bool = False) -> Any:
        errors, parameters = ((409, 429), [IDEMPOTENCY_KEY]) if create else ((), None)
        return {
            "post": _operation(
                op_id,
                "v2",
                summary,
                _ok(_ref(reply)),
                (404, *errors),
                parameters=parameters,
                body=_body(_ref(body), "Named by id or by name."),
            )
        }

    one_of = "One of project_id, project_name, batch_id or batch_name is required."
    paths = {
        "/v2/task": get(
            "v2_get_task",
            "Get a task",
            "TaskOut",
            [
                {**q("task_id", "The task's id."), "required": True},
                expand("project", "batch"),
                opts,
            ],
        ),
        "/v2/tasks": get(
            "v2_get_tasks",
            "List a project's or a batch's tasks, newest first. " + one_of,
            "GetTasksResponse",
            [
                *project,
                *batch,
                task_status,
                *times("completed_after", "completed_before"),
                *paging,
                expand("project", "batch"),
                opts,
            ],
        ),
        "/v2/task/chat": post(
            "v2_create_chat_task", "Create a chat task", "TaskOut", "CreateChatTaskRequest", True
        ),
        "/v2/task/metadata": post(
            "v2_set_task_metadata",
            "Set (or merge) a task's metadata",
            "TaskOut",
            "SetTaskMetadataRequest",
        ),
        "/v2/annotation": get(
            "v2_get_annotation",
            "Get one annotation of a delivered response",
            "V2Annotation",
            [{**q("annotation_id", "The annotation's id."), "required": True}],
        ),
        "/v2/schema": get(
            "v2_get_schema",
            "The JSON Schema a delivered response follows",
            "GetSchemaResponse",
            [
                {
                    **q("schema_id", "24 hex digits.", {"type": "string"}),
                    "required": True,
                }
            ],
        ),
        "/v2/batch": {
            **post("v2_create_batch", "Create a batch", "BatchOut", "CreateBatchRequest", True),
            **get(
                "v2_get_batch",
                "Get a batch (by id or name)",
                "BatchOut",
                [*batch, expand("project")],
            ),
        },
        "/v2/batches": get(
            "v2_get_batches",
            "List batches, newest first",
            "GetBatchesResponse",
            [
                *project,
                q("status", "Batch status.", {"type": "string", "enum": sorted(v2.BATCH_STATUSES)}),
                *times("created_after", "created_before", "completed_after", "completed_before"),
                *paging,
                expand("project"),
            ],
        ),
        "/v2/batch/finalize": post(
            "v2_finalize_batch", "Finalize a staging batch", "BatchOut", "BatchOperationRequest"
        ),
        "/v2/batch/metadata": post(
            "v2_set_batch_metadata",
            "Set (or merge) a batch's metadata",
            "BatchOut",
            "SetBatchMetadataRequest",
        ),
        "/v2/project": get(
            "v2_get_project", "Get a project (by id or name)", "ProjectOut", project
        ),
        "/v2/projects": get(
            "v2_get_projects",
            "List projects, oldest first",
            "GetProjectsResponse",
            times("created_after", "created_before"),
        ),
        "/v2/deliveries": get(
            "v2_get_deliveries",
            "A project's deliveries, newest first",
            "GetDeliveriesResponse",
            [*project, *times("delivered_after", "delivered_before"), expand("project")],
        ),
        "/v2/delivery": get(
            "v2_get_delivery",
            "The tasks of one delivery (by id, or by name within a project)",
            "GetDeliveredTasksResponse",
            [
                q("delivery_id", "The delivery's id."),
                q("delivery_name", "The delivery's name (with a project)."),
                *project,
                *paging,
                expand("project", "batch", "delivery"),
                opts,
            ],
        ),
        "/v2/delivery/tasks": get(
            "v2_get_delivery_tasks",
            "A project's tasks with their latest delivered response",
            "GetDeliveryTasksResponse",
            [
                *project,
                q("delivery_id", "Only the tasks of this delivery."),
                task_status,
                *times("completed_after", "completed_before"),
                *paging,
            ],
        ),
    }
    dataset = q("dataset_id", "The dataset's id (a project's datasetId).")
    delivered = times("delivered_after", "delivered_before")
    paths.update(
        {
            "/v2/datasets": get(
                "v2_get_datasets", "The datasets (ids the projects name)", "GetDatasetsResponse", []
            ),
            "/v2/datasets/deliveries": get(
                "v2_get_dataset_deliveries",
                "A dataset's deliveries (its projects'), newest first",
                "GetDatasetDeliveriesResponse",
                [dataset, *delivered, expand("dataset")],
            ),
            "/v2/datasets/delivery": get(
                "v2_get_dataset_delivery",
                "One dataset delivery and its tasks",
                "GetDatasetDeliveryResponse",
                [
                    {**q("delivery_id", "The delivery's id."), "required": True},
                    *paging,
                    expand("dataset", "delivery"),
                ],
            ),
            "/v2/datasets/tasks": get(
                "v2_get_dataset_tasks",
                "Delivered tasks of a dataset, one per task and delivery, newest first",
                "GetDatasetTasksResponse",
                [
                    dataset,
                    q("delivery_id", "Only the tasks of this delivery."),
                    *delivered,
                    *paging,
                    expand("dataset", "delivery"),
                ],
            ),
            "/v2/datasets/task": get(
                "v2_get_dataset_task",
                "A task as last delivered into a dataset",
                "DatasetTaskOut",
                [
                    {**q("task_id", "The task's id."), "required": True},
                    expand("dataset", "delivery"),
                ],
            ),
        }
    )
    response_url = get(
        "v2_get_dataset_task_response_url",
        "Redirect (302) to a file that the task's delivered response names",
        "DatasetTaskOut",
        [],
    )
    response_url["get"]["responses"] = {
        "302": {"description": "To the file's bytes (its attachment_url path)."},
        **{k: v for k, v in response_url["get"]["responses"].items() if k != "200"},
    }
    response_url["parameters"] = [
        _path("task_id", "The task's id."),
        _path("attachment_id", "A file id (POST /v1/files/upload) the response names."),
    ]
    paths["/v2/datasets/task/{task_id}/response_url/{attachment_id}"] = response_url
    for action, text in (
        ("pause", "Pause an in-progress batch"),
        ("resume", "Resume a paused batch"),
        ("cancel", "Cancel a batch and its unstarted tasks"),
    ):
        paths[f"/v2/batch/{action}"] = post(
            f"v2_{action}_batch", text, "BatchActionResponse", "BatchOperationRequest"
        )
    return paths


@functools.cache
def build_document() -> dict[str, Any]:
    """The whole document (built once; callers must not change it)."""
    schemas = _pydantic_schemas()
    _refine_request_schemas(schemas)
    paths = {
        **_task_paths(schemas),
        **_batch_paths(),
        **_project_paths(),
        **_file_paths(),
        **_team_paths(),
        **_studio_paths(),
        **_quality_paths(),
        **_other_paths(),
        **_v2_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskhook",
            "version": __version__,
            "description": (
                "A self-hostable, Scale-compatible task API (v1) with reliable task "
                "callbacks. Every success is a 200; every error is "
                '`{"status_code": N, "error": "..."}`. Test keys (`test_...`) and live keys '
                "(`live_...`) see separate worlds. Every reply carries `X-Request-Id`."
            ),
        },
        "tags": [
            {"name": name, "description": text}
            for name, text in (
                ("tasks", "Create, read, list and change tasks."),
                ("batches", "Batches of tasks."),
                ("projects", "Projects and their params."),
                ("files", "Uploaded and imported files, usable as task attachments."),
                ("teams", "The account's teammates and their roles."),
                ("studio", "How a team's own labelers are given work."),
                ("callbacks", "Callback deliveries of a task."),
                ("account", "The calling account."),
                ("events", "Signed workforce events (no API key)."),
                ("v2", "Scale's v2 API: tasks, batches, projects and deliveries."),
                ("operations", "Health, readiness, metrics, this document (no API key)."),
            )
        ],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {
                name: _error_response(code, text) for code, (name, text) in ERRORS.items()
            },
            "parameters": {"X-Request-Id": REQUEST_ID_PARAM},
            "headers": HEADERS,
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The API key as the user name and an empty password "
                    "(what Scale's SDK sends).",
                },
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <API key>`.",
                },
            },
        },
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
    }


@functools.cache
def _document_text() -> str:
    return json.dumps(build_document(), separators=(",", ":"), ensure_ascii=False)


@routes.get("/openapi.json")
async def openapi_json(_request: web.Request) -> web.Response:
    """No API key needed: the document describes the API, not an account."""
    return web.Response(text=_document_text(), content_type=JSON)
