"""Request bodies of the v1 API as pydantic models (strict: no silent coercion)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from taskhook.core.tasktypes import TASK_TYPES
from taskhook.core.validation import (
    CLOCK_SKEW,
    EARLIEST_STORED,
    LATEST_STORED,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_UNIQUE_ID_CHARS,
)

# Top-level fields of a task create; everything else is a type-specific parameter
# and is stored in `params`, as Scale does.
TASK_COMMON_FIELDS = frozenset(
    {
        "project",
        "batch",
        "instruction",
        "callback_url",
        "metadata",
        "unique_id",
        "tags",
        "priority",
        "clear_unique_id_on_error",
    }
)


# What the document states of rules that validation.py and tasktypes.py enforce (with
# their own messages), beside the fields they apply to.
UniqueId = Annotated[
    str, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_UNIQUE_ID_CHARS})
]
Tag = Annotated[
    Any,
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS, "pattern": r"\S"}
    ),
]
TaskType = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(TASK_TYPES)})]
TAGS_NOTE = f"At most {MAX_TAGS} distinct tags; order kept, duplicates ignored."
METADATA_NOTE = "A JSON object of at most 10 KB (serialized)."
CALLBACK_NOTE = (
    "An http(s) URL, or an e-mail address when the server has SMTP configured. A literal "
    "non-public address is refused unless TASKHOOK_ALLOW_PRIVATE_TARGETS is set."
)


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TaskCreate(BaseModel):
    """The fields every task type shares. Any other key is a type-specific parameter and is
    stored in the task's `params`."""

    model_config = ConfigDict(strict=True, extra="allow")

    project: str | None = Field(None, min_length=1, max_length=200)
    batch: str | None = Field(None, min_length=1, max_length=200)
    instruction: str | None = Field(None, max_length=100_000)
    callback_url: str | None = Field(None, max_length=2048, description=CALLBACK_NOTE)
    metadata: dict[str, Any] = Field(default_factory=dict, description=METADATA_NOTE)
    unique_id: UniqueId | None = None
    tags: list[Tag] | None = Field(None, description=TAGS_NOTE)
    priority: int | None = Field(None, ge=0, le=100)
    clear_unique_id_on_error: bool = False

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AuditRequest(Strict):
    """Accept or reject; `accepted: true` with a corrected `response` is a customer fix
    (the Tasks tab's Fix)."""

    accepted: bool
    comments: str | None = Field(None, max_length=10_000)
    response: dict[str, Any] | None = None


class UniqueIdRequest(Strict):
    unique_id: UniqueId


class BatchCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    project: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    callback: str | None = Field("", max_length=2048, description=CALLBACK_NOTE)
    calibration_batch: bool = False
    self_label_batch: bool = False
    metadata: dict[str, Any] | None = Field(None, description=METADATA_NOTE)


class ProjectCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    type: TaskType = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] | None = None
    rapid: bool = False
    studio: bool = False
    datasetId: str | None = None


class FileFields(BaseModel):
    """The fields of a file besides its bytes: upload's form fields, import's JSON."""

    model_config = ConfigDict(strict=True, extra="ignore")

    display_name: str | None = Field(None, min_length=1, max_length=500)
    project_name: str | None = Field(None, min_length=1, max_length=200)
    reference_id: str | None = Field(None, min_length=1, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class FileImport(FileFields):
    file_url: str = Field(min_length=1, max_length=2048)


TeamRole = Literal["labeler", "member", "manager", "admin"]


class TeamChange(BaseModel):
    """`POST /v1/teams/invite` and `/v1/teams/set_role`."""

    model_config = ConfigDict(strict=True, extra="ignore")

    emails: list[str] = Field(min_length=1, max_length=100)
    team_role: TeamRole


class StudioAssignmentChange(BaseModel):
    """`POST /v1/studio/assignments/add` and `/remove`."""

    model_config = ConfigDict(strict=True, extra="ignore")

    emails: list[str] = Field(min_length=1, max_length=100)
    projects: list[str] = Field(min_length=1, max_length=100)


class ProjectGroupCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    emails: list[str] = Field(default_factory=list, max_length=1000)


class ProjectGroupUpdate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    add_emails: list[str] = Field(default_factory=list, max_length=1000)
    remove_emails: list[str] = Field(default_factory=list, max_length=1000)


class BatchGroups(BaseModel):
    """`PUT /v1/studio/batches/{name}`: the groups the batch is given (replaces)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    groups: list[str] = Field(max_length=100)


class BatchName(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    name: str = Field(min_length=1, max_length=200)


class BatchPriorities(BaseModel):
    """`POST /v1/studio/batches/set_priorities`: batch names, first is worked first."""

    model_config = ConfigDict(strict=True, extra="ignore")

    batches: list[BatchName] = Field(max_length=1000)


# A workforce event of POST /v1/events.
EventType = Literal[
    "task.started",
    "task.completed",
    "task.errored",
    "task.recalled",
    "task.fixed",
    "task.delivered",  # v2: into a named delivery (taskhook/core/events_v2.py)
]


def _ref(model: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model}"}


def _when(types: list[str], then: dict[str, Any], otherwise: list[str]) -> dict[str, Any]:
    """Event types `types` need `then`; the others may not carry the fields `otherwise`."""
    rule = {"if": {"properties": {"type": {"enum": types}}, "required": ["type"]}, "then": then}
    if otherwise:
        rule["else"] = {"properties": {name: {"type": "null"} for name in otherwise}}
    return rule


def _both(*fields: str) -> dict[str, Any]:
    return {"required": list(fields), "properties": {f: {"not": {"type": "null"}} for f in fields}}


def _listed(field: str, model: str, least: int) -> dict[str, Any]:
    items = {"type": "array", "items": _ref(model), "minItems": least}
    return {"required": [field], "properties": {field: items}}


def _event_rules(schema: dict[str, Any]) -> None:
    """What each event type needs and may carry (events.py, events_v2.py): results as
    `response`, or as v2 `threads` or `sensitive_content_reports` (one form, not two); an
    error as `error` or v2 `errors`; `task.delivered` names its delivery."""
    for field, model in (
        ("threads", "Thread"),
        ("sensitive_content_reports", "SensitiveContentReport"),
        ("errors", "ErrorDetail"),
    ):  # validated with the v2 models at ingest
        schema["properties"][field]["anyOf"][0]["items"] = _ref(model)
    response = {"required": ["response"], "properties": {"response": {"type": "object"}}}
    results = [response, _listed("threads", "Thread", 0)]
    results.append(_listed("sensitive_content_reports", "SensitiveContentReport", 1))
    pairs = [_both("response", "threads"), _both("response", "sensitive_content_reports")]
    pairs.append(_both("threads", "sensitive_content_reports"))
    error = {"required": ["error"], "properties": {"error": {"type": "string", "minLength": 1}}}
    errors = [error, _listed("errors", "ErrorDetail", 1)]
    delivered = {"required": ["delivery_name"], "properties": {"delivery_name": {}}}
    schema["allOf"] = [
        _when(
            ["task.completed", "task.fixed"],
            {"anyOf": results, "not": {"anyOf": pairs}},
            ["threads", "sensitive_content_reports"],
        ),
        _when(["task.errored"], {"anyOf": errors}, ["errors"]),
        _when(["task.delivered"], delivered, ["delivery_name"]),
    ]


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_event_rules)

    event_id: str = Field(min_length=1, max_length=200)
    type: EventType
    task_id: str = Field(min_length=1, max_length=200)
    occurred_at: datetime | None = Field(
        None,
        strict=False,
        description="When it happened (default: when it is received); from "
        f"{EARLIEST_STORED.date()} up to {LATEST_STORED.date()} in UTC, and at most "
        f"{CLOCK_SKEW.seconds // 60} minutes ahead of the server's clock (else a 400).",
    )
    response: dict[str, Any] | None = None
    error: str | None = Field(None, max_length=10_000)
    attachments: list[Any] | None = None
    audited_by: str | None = Field(None, max_length=500)
    audit_time_secs: float | None = Field(None, ge=0, strict=False)
    comments: str | None = Field(None, max_length=10_000)
    # v2 results (checked and folded into response/error by taskhook/core/events_v2.py)
    threads: list[Any] | None = None
    sensitive_content_reports: list[Any] | None = None
    errors: list[Any] | None = None
    delivery_name: str | None = Field(None, min_length=1, max_length=200)

    def when(self) -> datetime:
        at = self.occurred_at or datetime.now(UTC)
        return at if at.tzinfo else at.replace(tzinfo=UTC)
