"""N2, the schema test over every v2 serializer: taskhook's v2 models
mirror the SDK's (required keys required, closed enums no wider, no field the SDK lacks),
and every serializer's output, over a grid of rows and opts, parses with the SDK's model
and holds none of the values N2 forbids. (Every reply of every other v2 test is checked
the same way by tests/v2/conftest.py.)"""

from __future__ import annotations

import inspect
import itertools
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

import pytest
import scaleapi.api_client.v2.models as sdk
from pydantic import BaseModel

from taskhook.core import models_v2 as ours
from taskhook.v2 import serialize
from taskhook.v2.schemas import CHAT_SCHEMA_ID, OTHER_SCHEMA_ID
from tests.v2.helpers import MESSAGE_ANNOTATIONS, rich_threads
from tests.v2.n2 import problems, reply_problems

# Our output models and the SDK model each one must parse as.
OUTPUT_PAIRS: list[tuple[type[BaseModel], Any]] = [
    (ours.TaskOut, sdk.Task),
    (ours.ProjectOut, sdk.Project),
    (ours.BatchOut, sdk.Batch),
    (ours.DeliveryOut, sdk.Delivery),
    (ours.GetTasksResponse, sdk.GetTasksResponse),
    (ours.GetBatchesResponse, sdk.GetBatchesResponse),
    (ours.GetProjectsResponse, sdk.GetProjectsResponse),
    (ours.GetDeliveriesResponse, sdk.GetDeliveriesResponse),
    (ours.GetDeliveredTasksResponse, sdk.GetDeliveredTasksResponse),
    (ours.GetDeliveryTasksResponse, sdk.GetDeliveryTasksResponse),
    (ours.DeliveredTaskDoc, sdk.GetDeliveryTasksResponseDocsInner),
    (ours.BatchActionResponse, sdk.PauseBatch200Response),
    (ours.BatchActionResponse, sdk.ResumeBatch200Response),
    (ours.BatchActionResponse, sdk.CancelBatch200Response),
    (ours.GetSchemaResponse, sdk.GetSchemaResponse),
    (ours.SchemaOut, sdk.GetSchemaResponseSchema),
    (ours.Thread, sdk.Thread),
    (ours.Turn, sdk.Turn),
    (ours.Message, sdk.Message),
    (ours.MessageContent, sdk.MessageContent),
    (ours.ModelParameters, sdk.ModelParameters),
    (ours.ReferenceText, sdk.ReferenceText),
    (ours.Reasoning, sdk.Reasoning),
    (ours.ChunkText, sdk.ChunkText),
    (ours.Submission, sdk.Submission),
    (ours.Rubric, sdk.Rubric),
    (ours.CriterionDefinition, sdk.CriterionDefinition),
    (ours.RubricEvaluation, sdk.RubricEvaluation),
    (ours.CriterionEvaluation, sdk.CriterionEvaluation),
    (ours.ErrorDetail, sdk.ErrorDetail),
    (ours.SensitiveContentReport, sdk.SensitiveContentReport),
    (ours.AnnotationMetadata, sdk.AnnotationMetadata),
    (ours.BasicFile, sdk.BasicFile),
    (ours.LabeledTextValue, sdk.LabeledTextValue),
    (ours.RubricCriteriaValue, sdk.RubricCriteriaValue),
    (ours.RubricRatingValue, sdk.RubricRatingValue),
    (ours.WorkspaceContainerValue, sdk.WorkspaceContainerValue),
    (ours.WorkspaceContainerConfig, sdk.WorkspaceContainerConfig),
    (ours.WorkspaceFile, sdk.WorkspaceFile),
    (ours.ContentAndUrl, sdk.ContentAndUrl),
    (ours.AnnotationInteger, sdk.AnnotationInteger),
    (ours.AnnotationBoolean, sdk.AnnotationBoolean),
    (ours.AnnotationText, sdk.AnnotationText),
    (ours.AnnotationCategory, sdk.AnnotationCategory),
    (ours.AnnotationCategoryMultiple, sdk.AnnotationCategoryMultiple),
    (ours.AnnotationFile, sdk.AnnotationFile),
    (ours.AnnotationLabeledText, sdk.AnnotationLabeledText),
    (ours.AnnotationRankedChoices, sdk.AnnotationRankedChoices),
    (ours.AnnotationRankedGroups, sdk.AnnotationRankedGroups),
    (ours.AnnotationRubricCriteria, sdk.AnnotationRubricCriteria),
    (ours.AnnotationRubricRating, sdk.AnnotationRubricRating),
    (ours.AnnotationWorkspaceContainer, sdk.AnnotationWorkspaceContainer),
]
# Request bodies: ours must accept everything the SDK sends.
REQUEST_PAIRS: list[tuple[type[BaseModel], Any]] = [
    (ours.CreateChatTaskRequest, sdk.CreateChatTaskRequest),
    (ours.SetTaskMetadataRequest, sdk.SetTaskMetadataRequest),
    (ours.CreateBatchRequest, sdk.CreateBatchRequest),
    (ours.BatchOperationRequest, sdk.BatchOperationRequest),
    (ours.SetBatchMetadataRequest, sdk.SetBatchMetadataRequest),
]


def _fields(model: Any) -> dict[str, Any]:
    """Fields by wire name (alias when there is one), minus the SDK's catch-all."""
    return {
        (f.alias or name): f
        for name, f in model.model_fields.items()
        if name != "additional_properties"
    }


def _args(annotation: Any) -> list[Any]:
    """Flatten unions, Optional and Annotated into their member types."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _args(arg)]
    if origin is typing.Annotated:
        return _args(typing.get_args(annotation)[0])
    return [annotation]


def _literal_values(annotation: Any) -> set[str] | None:
    values = [
        v for a in _args(annotation) if typing.get_origin(a) is Literal for v in typing.get_args(a)
    ]
    return set(values) if values else None


def _enum_values(annotation: Any) -> set[str] | None:
    for a in _args(annotation):
        if isinstance(a, type) and issubclass(a, Enum):
            return {m.value for m in a}
    return None


@pytest.mark.parametrize(("mine", "theirs"), OUTPUT_PAIRS, ids=lambda m: m.__name__)
def test_n2_output_models_mirror_the_sdk(mine: type[BaseModel], theirs: Any) -> None:
    """N2: every key the SDK requires is required and non-null in ours; ours has no key the
    SDK lacks; no closed enum of ours is wider than the SDK's."""
    my_fields, sdk_fields = _fields(mine), _fields(theirs)
    assert set(my_fields) <= set(sdk_fields), set(my_fields) - set(sdk_fields)
    for name, field in sdk_fields.items():
        if field.is_required():
            assert name in my_fields, f"{mine.__name__} lacks required {name}"
            assert type(None) not in _args(my_fields[name].annotation), name
    for name, field in my_fields.items():
        allowed = _enum_values(sdk_fields[name].annotation)
        literal = _literal_values(field.annotation)
        if allowed is not None:
            assert literal is not None and literal <= allowed, (name, literal, allowed)
        elif literal is not None and name == "type":
            assert typing.get_origin(sdk_fields[name].annotation) is None  # StrictStr


@pytest.mark.parametrize(("mine", "theirs"), REQUEST_PAIRS, ids=lambda m: m.__name__)
def test_n2_request_models_accept_what_the_sdk_sends(mine: type[BaseModel], theirs: Any) -> None:
    """Every key the SDK can send is known to ours, and ours requires nothing the SDK
    does not."""
    my_fields, sdk_fields = _fields(mine), _fields(theirs)
    assert set(sdk_fields) <= set(my_fields)
    mine_required = {n for n, f in my_fields.items() if f.is_required()}
    assert mine_required <= {n for n, f in sdk_fields.items() if f.is_required()}


def test_n2_attachment_extras_are_never_emitted() -> None:
    """The one model wider than the SDK's is the stored attachment, dropped on v2 (N1)."""
    content = ours.MessageContent.model_validate({"attachments": [{"file_size_in_bytes": 1}]})
    assert "attachments" not in serialize.dump(content)
    assert content.model_dump(exclude_none=True)["attachments"] == [{"file_size_in_bytes": 1}]


# --- the serializers over a grid of rows --------------------------------------------------

NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
SERIALIZERS = {
    "project_out",
    "batch_out",
    "task_out",
    "delivery_out",
    "delivered_doc",
    "dataset_out",
    "dataset_delivery_out",
    "dataset_task_out",
}

RESPONSES: dict[str, tuple[str, Any]] = {
    "pending": ("pending", None),
    "chat": ("completed", {"threads": rich_threads()}),
    "reported": ("completed", {"sensitive_content_reports": [{"type": "violence"}]}),
    "v1 response": ("completed", {"category": "x"}),
    "invalid threads": ("completed", {"threads": [{"turns": [{"messages": "x"}]}]}),
    "invalid reports": ("completed", {"sensitive_content_reports": [{"type": 1}]}),
    "v2 errors": ("error", {"error": "x", "errors": [{"type": "INVALID_CATEGORY"}]}),
    "invalid errors": ("error", {"error": "x", "errors": [{"type": "NOPE"}]}),
    "v1 error": ("error", {"error": "x", "attachments": []}),
    "errored without text": ("error", {}),
    "canceled": ("canceled", None),
    "recalled": ("pending", {"threads": rich_threads()}),
}


def project_row() -> dict[str, Any]:
    return {"public_id": "p" * 24, "name": "P", "created_at": NOW}


def batch_row(status: str, callback: str = "", done: bool = False) -> dict[str, Any]:
    return {
        "public_id": "b" * 24,
        "name": "B",
        "project_public_id": "p" * 24,
        "created_at": NOW,
        "completed_at": NOW if done else None,
        "effective_status": status,
        "callback": callback,
        "metadata": {},
    }


def task_row(status: str, response: Any, batch: bool) -> dict[str, Any]:
    return {
        "id": "t" * 24,
        "project_public_id": "p" * 24,
        "batch_public_id": "b" * 24 if batch else None,
        "status": status,
        "created_at": NOW,
        "completed_at": NOW if status == "completed" else None,
        "metadata": {"k": None},
        "response": response,
    }


def test_n2_every_serializer_is_in_the_grid() -> None:
    """A new serializer must join the grid below."""
    public = {
        name
        for name, fn in inspect.getmembers(serialize, inspect.isfunction)
        if fn.__module__ == serialize.__name__ and name.endswith(("_out", "_doc"))
    }
    assert public == SERIALIZERS


OPTS = [frozenset(), ours.OPTIONS]


@pytest.mark.parametrize(
    ("case", "batch", "expand", "opts"),
    list(itertools.product(sorted(RESPONSES), [False, True], [False, True], OPTS)),
)
def test_n2_task_out(case: str, batch: bool, expand: bool, opts: frozenset[str]) -> None:
    """task_out over every kind of stored result, with and without batch, expand, opts."""
    status, response = RESPONSES[case]
    project = serialize.project_out(project_row()) if expand else None
    expanded = serialize.batch_out(batch_row("in_progress")) if expand and batch else None
    task = serialize.task_out(task_row(status, response, batch), project, expanded)
    body = serialize.dump(task, opts)
    assert reply_problems("GET", "/v2/task", 200, body) == []
    listed = serialize.dump(ours.GetTasksResponse(tasks=[task], next_token="tok"), opts)
    assert reply_problems("GET", "/v2/tasks", 200, listed) == []
    last = serialize.dump(ours.GetTasksResponse(tasks=[task]), opts)
    assert "next_token" not in last
    assert ("threads" in body) == (case != "reported")
    assert body["metadata"] == {"k": None}  # the customer's nulls are kept


@pytest.mark.parametrize("status", sorted(ours.BATCH_STATUSES))
@pytest.mark.parametrize("callback", ["", "https://cb.example.com"])
def test_n2_batch_out(status: str, callback: str) -> None:
    """batch_out in every status: metadata always an object, callback omitted when unset."""
    row = batch_row(status, callback, done=status == "completed")
    for project in (None, serialize.project_out(project_row())):
        body = serialize.dump(serialize.batch_out(row, project))
        assert reply_problems("GET", "/v2/batch", 200, body) == []
        assert body["metadata"] == {} and ("callback" in body) == bool(callback)
        action = ours.BatchActionResponse(batch=serialize.batch_out(row), message="m")
        assert reply_problems("POST", "/v2/batch/pause", 200, serialize.dump(action)) == []
    listed = ours.GetBatchesResponse(batches=[serialize.batch_out(row)])
    assert reply_problems("GET", "/v2/batches", 200, serialize.dump(listed)) == []


def test_n2_project_and_delivery_out() -> None:
    project = serialize.project_out(project_row())
    assert reply_problems("GET", "/v2/project", 200, serialize.dump(project)) == []
    projects = ours.GetProjectsResponse(projects=[project])
    assert reply_problems("GET", "/v2/projects", 200, serialize.dump(projects)) == []
    row = {
        "id": "d" * 24,
        "name": "D",
        "task_count": 3,
        "delivered_at": NOW,
        "project_public_id": "p" * 24,
    }
    for shown in (None, project):
        delivery = serialize.delivery_out(row, shown)
        listed = ours.GetDeliveriesResponse(deliveries=[delivery])
        assert reply_problems("GET", "/v2/deliveries", 200, serialize.dump(listed)) == []
        task = serialize.task_out(task_row("completed", {"threads": rich_threads()}, True))
        for ref in (delivery, row["id"]):
            page = ours.GetDeliveredTasksResponse(delivery=ref, tasks=[task], next_token="t")
            assert reply_problems("GET", "/v2/delivery", 200, serialize.dump(page)) == []


@pytest.mark.parametrize("delivered", [False, True])
@pytest.mark.parametrize("response", [{"threads": rich_threads()}, {"category": "x"}])
def test_n2_delivered_doc(delivered: bool, response: dict[str, Any]) -> None:
    """delivered_doc: total an int; undelivered tasks have the delivery fields null."""
    row = {
        "id": "t" * 24,
        "created_at": NOW,
        "delivery_id": "d" * 24 if delivered else None,
        "delivered_at": NOW if delivered else None,
        "response": response if delivered else None,
    }
    schema = CHAT_SCHEMA_ID if "threads" in response else OTHER_SCHEMA_ID
    doc = serialize.delivered_doc(row, schema)
    body = serialize.dump(ours.GetDeliveryTasksResponse(docs=[doc], total=1))
    assert reply_problems("GET", "/v2/delivery/tasks", 200, body) == []
    keys = ("delivery_id", "delivered_at", "response_schema_id", "response")
    assert all((body["docs"][0][k] is None) != delivered for k in keys)


@pytest.mark.parametrize("annotation", MESSAGE_ANNOTATIONS, ids=lambda a: a["type"])
def test_n2_every_annotation_type(annotation: dict[str, Any]) -> None:
    """Each of the 12 annotation types, as get_annotation answers it, parses as its own
    subclass."""
    adapter = serialize.TypeAdapter(ours.Annotation)
    body = adapter.dump_python(adapter.validate_python(annotation), mode="json", exclude_none=True)
    assert reply_problems("GET", "/v2/annotation", 200, body) == []
    parsed = sdk.Annotation.from_dict(body)
    assert parsed.actual_instance.type == annotation["type"]


def test_n2_checker_catches_what_it_should() -> None:
    """The checker itself: each forbidden value is reported."""
    bad = {
        "tasks": [
            {
                "task_id": "t",
                "project": "p",
                "status": "deleted!",
                "created_at": "",
                "batch": {
                    "id": "b",
                    "name": "n",
                    "project": "p",
                    "created_at": "x",
                    "status": "canceled",
                },
                "threads": [{"id": "t", "turns": [{"id": "u", "messages": [{"role": "tool"}]}]}],
            }
        ],
        "next_token": "",
    }
    found = "\n".join(problems(bad))
    for expected in (
        "next_token",
        "created_at",
        "task status",
        "batch status",
        "metadata of a batch",
        "no annotations list",
        "bad role",
    ):
        assert expected in found, expected
    assert problems({"annotations": [{"id": "a", "key": "k", "type": "<string>"}]})
    assert reply_problems("GET", "/v2/task", 400, {"status_code": 400}) != []


def dataset_task_row(response: Any) -> dict[str, Any]:
    """A row of v2_dataset_tasks (with the delivery's columns)."""
    return {
        "task_id": "t" * 24,
        "response": response,
        "delivered_at": NOW,
        "delivery_id": "d" * 24,
        "delivery_name": "D",
        "delivery_delivered_at": NOW,
        "dataset_id": "ds",
        "task_count": 2,
    }


@pytest.mark.parametrize("expand", [(), ("dataset",), ("delivery",), ("dataset", "delivery")])
@pytest.mark.parametrize("response", [{"category": "x"}, {"threads": rich_threads()}, None])
def test_n2_dataset_serializers(expand: tuple[str, ...], response: Any) -> None:
    """dataset_out, dataset_delivery_out and dataset_task_out, every expand, as the SDK
    parses them; a task delivered without a response shows an empty object."""
    row = dataset_task_row(response)
    task = serialize.dataset_task_out(row, expand)
    body = serialize.dump(ours.GetDatasetTasksResponse(tasks=[task], next_token="tok"))
    assert reply_problems("GET", "/v2/datasets/tasks", 200, body) == []
    one = serialize.dump(task)
    assert reply_problems("GET", "/v2/datasets/task", 200, one) == []
    assert one["response"] == (response or {})
    assert isinstance(one["delivery"], dict) == ("delivery" in expand)
    delivery_row = {
        "id": "d" * 24,
        "name": "D",
        "delivered_at": NOW,
        "dataset_id": "ds",
        "task_count": 2,
    }
    delivery = serialize.dataset_delivery_out(delivery_row, "dataset" in expand)
    listed = serialize.dump(ours.GetDatasetDeliveriesResponse(deliveries=[delivery]))
    assert reply_problems("GET", "/v2/datasets/deliveries", 200, listed) == []
    assert listed["deliveries"][0]["metadata"] == {"task_count": 2}
    datasets = serialize.dump(ours.GetDatasetsResponse(datasets=[serialize.dataset_out("ds")]))
    assert reply_problems("GET", "/v2/datasets", 200, datasets) == []
