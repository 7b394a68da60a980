"""The v1 replies as pydantic models: what the serializers build and the OpenAPI document
describes.

A field with `absent()` is a key present only while it holds a value (Scale's SDK tests
check, e.g., that a new task has no `tags`): never null, left out instead. The serializers
build these with `built`, which skips validation (the hot paths pay nothing for the
types); the tests validate every reply against them (the app's `validate_replies`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from taskhook.core.tasktypes import TASK_TYPES

M = TypeVar("M", bound=BaseModel)

Timestamp = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2016-06-23T09:09:34.752Z"]}
    ),
]


def _task_type(value: str) -> str:
    if value not in TASK_TYPES:
        raise ValueError(f"not a task type: {value!r}")
    return value


TaskType = Annotated[
    str,
    AfterValidator(_task_type),
    WithJsonSchema({"type": "string", "enum": sorted(TASK_TYPES)}),
]
TaskStatus = Literal["pending", "completed", "canceled", "error"]
ReviewStatus = Literal["pending", "accepted", "fixed", "rejected", "commented"]
BatchState = Literal["staging", "in_progress", "completed"]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent() -> Any:
    """A key left out when it has no value (so not required, and never null)."""
    return Field(None, json_schema_extra=_no_default)


def built(model: type[M], data: dict[str, Any]) -> M:
    """`data` as a `model`, unvalidated: the model keeps the dict itself, which holds
    exactly the keys of the JSON in field order (jsoncodec writes it as it is)."""
    obj = model.__new__(model)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(data))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Audit(Reply):
    """One review of a task: a customer's accept, reject or fix, or a fix by Scale."""

    audited_by: str
    audited_at: Timestamp
    audit_result: Literal["accepted", "rejected", "fixed"]
    audit_source: Literal["customer", "scale"]
    audit_time_secs: int | float = absent()


class Task(Reply):
    """A task as `GET /v1/task/{task_id}` returns it. Keys marked optional are present only
    while they hold a value."""

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
    completed_at: Timestamp = absent()
    batch: str = absent()
    response: dict[str, Any] = absent()
    callback_succeeded: bool = absent()
    customer_review_status: ReviewStatus = absent()
    customer_review_comments: list[str] = absent()
    prior_responses: list[dict[str, Any] | None] = absent()
    unique_id: str = absent()
    tags: list[str] = absent()
    priority: int = absent()
    times_redone: int = absent()


class LimitedTask(Reply):
    """A task in a `limited_response=true` listing."""

    task_id: str
    status: TaskStatus
    metadata: dict[str, Any]
    project: str | None


def _next_token_with_more(schema: dict[str, Any]) -> None:
    schema["if"] = {"properties": {"has_more": {"const": True}}, "required": ["has_more"]}
    schema["then"] = {"required": ["next_token"]}
    schema["else"] = {"not": {"required": ["next_token"]}}


class TaskList(Reply):
    """Keyset paging, newest first; `next_token` is present exactly when `has_more`."""

    model_config = ConfigDict(json_schema_extra=_next_token_with_more)

    docs: list[Task | LimitedTask]
    total: int
    limit: int
    offset: Literal[0]
    has_more: bool
    next_token: str = absent()


class Batch(Reply):
    name: str
    project: str
    status: BatchState
    callback: str
    calibration_batch: bool
    self_label_batch: bool
    metadata: dict[str, Any]
    created_at: Timestamp


class BatchList(Reply):
    """Offset paging, as the SDK's `batches()` reads it (`totalDocs`, not `total`)."""

    docs: list[Batch]
    totalDocs: int
    limit: int
    offset: int
    has_more: bool


class BatchStatus(Reply):
    status: BatchState
    pending: int
    completed: int
    error: int
    canceled: int


class Project(Reply):
    """`param_history` entries are the params given, plus `version` and `created_at`."""

    name: str
    type: TaskType
    param_history: list[dict[str, Any]]
    rapid: bool
    studio: bool
    created_at: Timestamp
    datasetId: str = absent()


class TaskTemplate(Reply):
    id: str
    version: int
    created_at: Timestamp
    updated_at: Timestamp
    template_variables: dict[str, Any]
    auto_onboard_enabled: bool
    response_schema: Any = absent()


class Teammate(Reply):
    email: str
    role: Literal["labeler", "member", "manager", "admin"]
    company: str
    firstName: None
    lastName: None
    isStudioLabeler: bool
    expiry: None


class StudioWorker(Reply):
    id: str
    email: str


class StudioProjectGroup(Reply):
    id: str
    name: str
    numWorkers: int
    isSingleton: bool
    workers: list[StudioWorker]


class StudioBatch(Reply):
    id: str
    name: str
    projectId: str
    projectName: str
    batchType: Literal["Production"]
    studioPriority: int | None
    total: int
    completed: int
    groups: list[str]


class StudioWork(Reply):
    batch: str
    project: str
    studioPriority: int | None
    pending: int


class QualityTask(Reply):
    """An evaluation or training task: a task's params with the answer it expects."""

    id: str
    type: TaskType
    project: str
    instruction: str | None
    params: dict[str, Any]
    expected_response: dict[str, Any]
    metadata: dict[str, Any]
    created_at: Timestamp
    initial_response: dict[str, Any] = absent()


class File(Reply):
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


class Account(Reply):
    account_id: str
    name: str
    default_callback_url: str | None


class RotatedSecret(Reply):
    """The new signing secret, shown once."""

    signing_secret: str
    previous_secret_valid_until: Timestamp | None


class Attempt(Reply):
    attempt: int
    started_at: Timestamp
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str


class Delivery(Reply):
    delivery_id: int
    webhook_id: str = Field(
        description="The `webhook-id` header of every attempt of this delivery (Standard "
        "Webhooks message id, `msg_...`); a receiver dedupes and reports on it."
    )
    trigger: Literal[
        "completed", "error", "audit", "fixed", "recalled", "resend", "batch_completed"
    ]
    state: Literal["pending", "sending", "succeeded", "failed"]
    created_at: Timestamp
    attempts: list[Attempt]


class CallbackList(Reply):
    """A task's callback deliveries, oldest first, with every attempt."""

    task_id: str
    deliveries: list[Delivery]


class BatchCallbackList(Reply):
    """A batch's callback deliveries: one once it completes, if it has a callback."""

    batch: str
    deliveries: list[Delivery]


class Resent(Reply):
    task_id: str
    delivery_id: int
    state: Literal["pending"]


class EventResult(Reply):
    event_id: str
    status: Literal["applied", "duplicate", "rejected"]
    error: str = absent()


class IngestReply(Reply):
    """One result per event, in input order."""

    results: list[EventResult]


class Health(Reply):
    status: Literal["ok"]


class Ready(Reply):
    status: Literal["ready"]


class Error(Reply):
    """Every error: the HTTP status again, and a message that says what and where."""

    status_code: int
    error: str
