"""Request bodies of the v1 API as pydantic models (strict: no silent coercion)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TaskCreate(BaseModel):
    """The common part of `POST /v1/task/{type}`; extra keys become `params`."""

    model_config = ConfigDict(strict=True, extra="allow")

    project: str | None = Field(None, min_length=1, max_length=200)
    batch: str | None = Field(None, min_length=1, max_length=200)
    instruction: str | None = Field(None, max_length=100_000)
    callback_url: str | None = Field(None, max_length=2048)
    metadata: dict[str, Any] = Field(default_factory=dict)
    unique_id: str | None = None
    tags: list[Any] | None = None
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
    unique_id: str


class BatchCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    project: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    callback: str | None = Field("", max_length=2048)
    calibration_batch: bool = False
    self_label_batch: bool = False
    metadata: dict[str, Any] | None = None


class ProjectCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    type: str = Field(min_length=1)
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


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    event_id: str = Field(min_length=1, max_length=200)
    type: EventType
    task_id: str = Field(min_length=1, max_length=200)
    occurred_at: datetime | None = Field(None, strict=False)
    response: dict[str, Any] | None = None
    error: str | None = Field(None, max_length=10_000)
    attachments: list[Any] | None = None
    audited_by: str | None = Field(None, max_length=500)
    audit_time_secs: float | None = Field(None, ge=0, strict=False)
    comments: str | None = Field(None, max_length=10_000)
    # v2 (issue 8; checked and folded into response/error by taskhook/core/events_v2.py)
    threads: list[Any] | None = None
    sensitive_content_reports: list[Any] | None = None
    errors: list[Any] | None = None
    delivery_name: str | None = Field(None, min_length=1, max_length=200)

    def when(self) -> datetime:
        at = self.occurred_at or datetime.now(UTC)
        return at if at.tzinfo else at.replace(tzinfo=UTC)
