"""Scale's v2 shapes as pydantic models, mirroring scaleapi 2.18.4's `client.v2` models.

One set of models serves both directions:
- ingest: the workforce's `threads`, `errors` and `sensitive_content_reports` are validated
  strictly (no coercion, unknown keys refused) before anything is stored; missing ids of
  threads, turns and annotations are assigned here, and missing `annotations` become `[]`;
- output: every v2 reply is built by validating into these models and dumping them, so a
  reply the SDK could not parse cannot be produced (closed enums, required keys, an
  annotation `type` with a strictly typed `value`, `annotations: []` at every level).

Where the SDK declares more than it can parse, these models accept only what parses: a `file`
annotation's value is a list of files (a single object makes the SDK raise "Multiple
matches"), and message `attachments` are kept but never emitted on v2.

Dumps honour a context `{"opts": {...}}` (the `opts` query parameter): without
`annotation_details` an annotation keeps only its answer (id, key, type, value,
not_applicable, cannot_assess, justification); `model_parameters` and `submissions` appear
only when asked for. With no context (the stored form) everything is kept.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

TaskStatus = Literal["pending", "completed", "canceled", "error", "deleted"]
# What taskhook's tasks can be (the SDK's enum also has "deleted"; nothing is deleted here).
StoredTaskStatus = Literal["pending", "completed", "canceled", "error"]
# Two l's, unlike the task's "canceled", as Scale spells it for batches.
BatchStatus = Literal["staging", "in_progress", "completed", "paused", "cancelled"]
ErrorType = Literal[
    "UNSUPPORTED_LANGUAGE",
    "LANGUAGE_MISMATCH",
    "PROMPT_LENGTH_EXCEEDED",
    "INVALID_CATEGORY",
    "PROMPT_INFEASIBLE",
]
MessageRole = Literal["system", "user", "assistant", "function"]
Option = Literal["annotation_details", "attachment_details", "model_parameters", "submissions"]
OPTIONS: frozenset[str] = frozenset(get_args(Option))
TASK_STATUSES: frozenset[str] = frozenset(get_args(TaskStatus))
BATCH_STATUSES: frozenset[str] = frozenset(get_args(BatchStatus))

# Annotation keys that only `opts=annotation_details` adds.
ANNOTATION_DETAILS = ("title", "description", "labels", "possible_values", "metadata")


def _opts(info: SerializationInfo) -> frozenset[str] | None:
    """The opts of an output dump; None for the stored form (keep everything)."""
    context = info.context
    if not isinstance(context, dict) or "opts" not in context:
        return None
    return frozenset(context["opts"])


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _iso_datetime(value: str) -> str:
    """A date-time string the SDK's lax datetime parser reads: normalized to UTC with 'Z'."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z") from None
    parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


IsoDateTime = Annotated[str, AfterValidator(_iso_datetime)]
Number = int | float  # the SDK's Union[StrictFloat, StrictInt]; ints stay ints


class V2Model(BaseModel):
    """Strict: no coercion ("3" is not 3, 1 is not true), unknown keys refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


class OpenModel(BaseModel):
    """For the SDK's objects with `additional_properties`: unknown keys are kept."""

    model_config = ConfigDict(strict=True, extra="allow")


# --- annotations (SDK: annotation.py, base_annotation.py and the 12 subtypes) -------------


class AnnotationMetadata(V2Model):
    # The SDK keeps only `criteria` (a string or a nested annotation).
    criteria: str | Annotation | None = None


class AnnotationBase(V2Model):
    id: str = Field(default_factory=lambda: new_id("an"), min_length=1)
    key: str = Field(min_length=1)
    title: str | None = None
    description: str | None = None
    labels: list[str] | None = None
    not_applicable: bool | None = None
    cannot_assess: bool | None = None
    metadata: AnnotationMetadata | None = None
    justification: str | None = None

    @model_serializer(mode="wrap")
    def _by_opts(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        opts = _opts(info)
        if opts is not None and "annotation_details" not in opts:
            for key in ANNOTATION_DETAILS:
                data.pop(key, None)
        return data


class AnnotationInteger(AnnotationBase):
    type: Literal["integer"]
    value: int | None = None
    possible_values: list[int] | None = None


class AnnotationBoolean(AnnotationBase):
    type: Literal["boolean"]
    value: bool | None = None
    possible_values: list[bool] | None = None


class AnnotationText(AnnotationBase):
    type: Literal["text"]
    value: str | None = None


class AnnotationCategory(AnnotationBase):
    type: Literal["category"]
    value: str | None = None
    possible_values: list[str] | None = None


class AnnotationCategoryMultiple(AnnotationBase):
    type: Literal["category_multiple"]
    value: list[str] | None = None
    possible_values: list[str] | None = None


class BasicFile(V2Model):
    content: str | None = None
    mime_type: str | None = None
    scale_url: str | None = None
    url: str | None = None
    name: str | None = None


class AnnotationFile(AnnotationBase):
    type: Literal["file"]
    # Only the list form parses in the SDK; a single object raises "Multiple matches".
    value: list[BasicFile] | None = None


class LabeledTextValue(V2Model):
    label: str | None = None
    text: str | None = None


class AnnotationLabeledText(AnnotationBase):
    type: Literal["labeled_text"]
    value: list[LabeledTextValue] | None = None


class AnnotationRankedChoices(AnnotationBase):
    type: Literal["ranked_choices"]
    value: list[str] | None = None


class AnnotationRankedGroups(AnnotationBase):
    type: Literal["ranked_groups"]
    value: list[list[str]] | None = None


class RubricCriteriaValue(OpenModel):
    weight: Number | None = None


class AnnotationRubricCriteria(AnnotationBase):
    type: Literal["rubric_criteria"]
    value: RubricCriteriaValue | None = None


class RubricRatingValue(OpenModel):
    score: Number | None = None
    color: str | None = None
    justification: str | None = None


class AnnotationRubricRating(AnnotationBase):
    type: Literal["rubric_rating"]
    value: RubricRatingValue | None = None


class WorkspaceContainerConfig(V2Model):
    workspace_id: str
    workspace_url: str
    workspace_token: str
    expires_at: str
    inactivity_freeze_time: int
    force_enable_workspace_access: bool | None = None
    workspace_image_version: int | None = None


class WorkspaceFile(V2Model):
    scale_url: str
    file_name: str | None = None
    url: str | None = None
    file_language: str | None = None
    file_content: str | None = None


class ContentAndUrl(V2Model):
    content: str | None = None
    url: str | None = None
    scale_url: str | None = None


class WorkspaceContainerValue(V2Model):
    workspace_id: str | None = None
    workspace_config: WorkspaceContainerConfig | None = None
    last_code_run_event: dict[str, Any] | None = None
    output_files: list[WorkspaceFile] | None = None
    stdout_output: ContentAndUrl | None = None
    stderr_output: ContentAndUrl | None = None
    test_stdout_output: ContentAndUrl | None = None
    test_stderr_output: ContentAndUrl | None = None


class AnnotationWorkspaceContainer(AnnotationBase):
    type: Literal["workspace_container"]
    value: WorkspaceContainerValue | None = None


Annotation = Annotated[
    AnnotationInteger
    | AnnotationBoolean
    | AnnotationText
    | AnnotationCategory
    | AnnotationCategoryMultiple
    | AnnotationFile
    | AnnotationLabeledText
    | AnnotationRankedChoices
    | AnnotationRankedGroups
    | AnnotationRubricCriteria
    | AnnotationRubricRating
    | AnnotationWorkspaceContainer,
    Field(discriminator="type"),
]
ANNOTATION_TYPES: frozenset[str] = frozenset(
    {
        "integer",
        "boolean",
        "text",
        "category",
        "category_multiple",
        "file",
        "labeled_text",
        "ranked_choices",
        "ranked_groups",
        "rubric_criteria",
        "rubric_rating",
        "workspace_container",
    }
)

# --- threads, turns, messages (SDK: thread.py, turn.py, message.py, message_content.py) ---


class ReferenceText(V2Model):
    content: str | None = None
    category: str | None = None
    url: str | None = None


class Attachment(V2Model):
    """Any of the SDK's BasicFile, ImageFile and AudioFile. Stored, never emitted on v2."""

    content: str | None = None
    mime_type: str | None = None
    scale_url: str | None = None
    url: str | None = None
    name: str | None = None
    file_size_in_bytes: int | None = None
    duration: Number | None = None
    transcript: str | None = None
    transcript_url: str | None = None
    transcript_start: Number | None = None
    transcript_end: Number | None = None


class ChunkText(V2Model):
    type: str
    text: str
    annotations: list[Annotation] = Field(default_factory=list)


class Reasoning(V2Model):
    content: str | None = None


class MessageContent(V2Model):
    text: str | None = None
    reference_texts: list[ReferenceText] | None = None
    attachments: list[Attachment] | None = None
    chunks: list[ChunkText] | None = None
    reasoning: list[Reasoning] | None = None

    @model_serializer(mode="wrap")
    def _no_attachments(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if _opts(info) is not None:  # never on v2: the SDK cannot parse them
            data.pop("attachments", None)
        return data


class ModelParameters(V2Model):
    model: str | None = None
    temperature: Number | None = None
    max_completion_tokens: int | None = None
    top_p: Number | None = None
    top_k: int | None = None


class CriterionEvaluation(V2Model):
    criterion_definition_id: str | None = None
    score: Number | None = None
    annotations: list[Annotation] | None = None


class RubricEvaluation(V2Model):
    criteria_evaluations: list[CriterionEvaluation] | None = None
    annotations: list[Annotation] | None = None
    total_score: Number | None = None
    percentage: Number | None = None


class Message(V2Model):
    role: MessageRole
    content: MessageContent
    source_id: str
    model_parameters: ModelParameters | None = None
    annotations: list[Annotation] = Field(default_factory=list)
    rubric_evaluations: list[RubricEvaluation] | None = None

    @model_serializer(mode="wrap")
    def _by_opts(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        opts = _opts(info)
        if opts is not None and "model_parameters" not in opts:
            data.pop("model_parameters", None)
        return data


class CriterionDefinition(V2Model):
    id: str = Field(min_length=1)
    criterion: str
    weight: Number | None = None
    annotations: list[Annotation] = Field(default_factory=list)


class Rubric(V2Model):
    criteria_definitions: list[CriterionDefinition]
    max_total_score: int | None = None


class Turn(V2Model):
    id: str = Field(default_factory=lambda: new_id("turn"), min_length=1)
    messages: list[Message]
    annotations: list[Annotation] = Field(default_factory=list)
    rubrics: list[Rubric] | None = None


class Submission(V2Model):
    submitted_at: IsoDateTime | None = None
    contributor_id: str | None = None


class Thread(V2Model):
    id: str = Field(default_factory=lambda: new_id("thread"), min_length=1)
    turns: list[Turn]
    annotations: list[Annotation] = Field(default_factory=list)
    submissions: list[Submission] | None = None

    @model_serializer(mode="wrap")
    def _by_opts(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        opts = _opts(info)
        if opts is not None and "submissions" not in opts:
            data.pop("submissions", None)
        return data


class ErrorDetail(V2Model):
    type: ErrorType | None = None
    message: str | None = None


class SensitiveContentReport(V2Model):
    type: str | None = None
    message: str | None = None


AnnotationMetadata.model_rebuild()


# --- objects and list replies (SDK: task.py, batch.py, project.py, delivery.py, get_*) ----

NonEmptyToken = Annotated[str, Field(min_length=1)]  # `next_token: ""` loops v2_get_tasks


class ProjectOut(V2Model):
    id: str
    name: str
    created_at: IsoDateTime
    types: list[str] | None = None
    models: list[str] | None = None


class BatchOut(V2Model):
    id: str
    name: str
    project: str | ProjectOut
    created_at: IsoDateTime
    completed_at: IsoDateTime | None = None
    status: BatchStatus
    callback: str | None = None
    metadata: dict[str, Any]  # required and non-null: `{}` at least


class TaskOut(V2Model):
    task_id: str
    project: str | ProjectOut
    batch: str | BatchOut | None = None
    status: StoredTaskStatus
    created_at: IsoDateTime
    completed_at: IsoDateTime | None = None
    metadata: dict[str, Any] | None = None
    threads: list[Thread] | None = None
    errors: list[ErrorDetail] | None = None
    sensitive_content_reports: list[SensitiveContentReport] | None = None


class DeliveryOut(V2Model):
    id: str
    name: str
    task_count: int
    delivered_at: IsoDateTime
    project: str | ProjectOut


class GetTasksResponse(V2Model):
    tasks: list[TaskOut]
    next_token: NonEmptyToken | None = None


class GetBatchesResponse(V2Model):
    batches: list[BatchOut]
    next_token: NonEmptyToken | None = None


class GetProjectsResponse(V2Model):
    projects: list[ProjectOut]


class GetDeliveriesResponse(V2Model):
    deliveries: list[DeliveryOut]


class GetDeliveredTasksResponse(V2Model):
    delivery: str | DeliveryOut | None = None
    tasks: list[TaskOut]
    next_token: NonEmptyToken | None = None


class DeliveredTaskDoc(V2Model):
    task_id: str
    created_at: IsoDateTime | None = None
    delivery_id: str | None
    delivered_at: str | None  # the SDK keeps it a string
    response_schema_id: str | None
    response: dict[str, Any] | None

    @model_serializer(mode="wrap")
    def _nulls(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Undelivered tasks show the delivery fields as null (Scale's docs), not absent."""
        data = handler(self)
        for key in ("delivery_id", "delivered_at", "response_schema_id", "response"):
            data.setdefault(key, None)
        return data


class GetDeliveryTasksResponse(V2Model):
    docs: list[DeliveredTaskDoc]
    total: int
    next_token: NonEmptyToken | None = None


class DatasetOut(V2Model):
    id: str
    name: str


class DatasetDeliveryMetadata(V2Model):
    task_count: int


class DatasetDeliveryOut(V2Model):
    id: str
    name: str
    delivered_at: IsoDateTime
    dataset: str | DatasetOut
    metadata: DatasetDeliveryMetadata


class DatasetTaskOut(V2Model):
    task_id: str
    dataset: str | DatasetOut
    delivery: str | DatasetDeliveryOut
    response: dict[str, Any]


class GetDatasetsResponse(V2Model):
    datasets: list[DatasetOut]


class GetDatasetDeliveriesResponse(V2Model):
    deliveries: list[DatasetDeliveryOut]


class GetDatasetDeliveryResponse(V2Model):
    delivery: str | DatasetDeliveryOut | None = None
    tasks: list[DatasetTaskOut]
    next_token: NonEmptyToken | None = None


class GetDatasetTasksResponse(V2Model):
    tasks: list[DatasetTaskOut]
    next_token: NonEmptyToken | None = None


class BatchActionResponse(V2Model):
    """Pause, resume and cancel: `{batch, message}`."""

    batch: BatchOut
    message: str


class SchemaOut(V2Model):
    id: str
    json_: str = Field(alias="json")

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class GetSchemaResponse(V2Model):
    schema_: SchemaOut = Field(alias="schema")

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


# --- request bodies (SDK: create_chat_task_request.py and the others) ---------------------


class RequestModel(BaseModel):
    """Request bodies: strict types; unknown keys refused (the SDK never sends any)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class CreateChatTaskRequest(RequestModel):
    project_id: str | None = Field(None, min_length=1, max_length=200)
    project_name: str | None = Field(None, min_length=1, max_length=200)
    batch_id: str | None = Field(None, min_length=1, max_length=200)
    batch_name: str | None = Field(None, min_length=1, max_length=200)
    template_variables: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = Field(None, max_length=2048)


class SetTaskMetadataRequest(RequestModel):
    task_id: str = Field(min_length=1, max_length=200)
    metadata: dict[str, Any]
    merge: bool = False


class CreateBatchRequest(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    project_id: str | None = Field(None, min_length=1, max_length=200)
    project_name: str | None = Field(None, min_length=1, max_length=200)
    callback: str | None = Field(None, max_length=2048)
    staging_batch: bool = False
    metadata: dict[str, Any] | None = None


class BatchOperationRequest(RequestModel):
    batch_id: str | None = Field(None, min_length=1, max_length=200)
    batch_name: str | None = Field(None, min_length=1, max_length=200)


class SetBatchMetadataRequest(BatchOperationRequest):
    metadata: dict[str, Any]
    merge: bool = False
