"""The N2 rule (what v2 replies never hold): no v2 JSON ever contains
`next_token: ""`, an empty timestamp, `batch.metadata: null`, a status outside the enums, an
annotation without a known `type`, a thread, turn or message without `annotations`, or a
non-empty `attachments`; every 200 parses with the SDK's model of its operation, and every
error is exactly `{"status_code": N, "error": "..."}`.

`problems()` is used by tests/v2/test_v2_schema.py over every serializer, and by the
capturing middleware of tests/v2/conftest.py on every reply of every v2 test.
"""

from __future__ import annotations

from typing import Any

import scaleapi.api_client.v2.models as sdk

from taskhook.core.models_v2 import ANNOTATION_TYPES, BATCH_STATUSES

TASK_STATUSES = {s.value for s in sdk.TaskStatus}
ERROR_TYPES = {e.value for e in sdk.ErrorType}
ROLES = {r.value for r in sdk.MessageRole}
TIMESTAMPS = ("created_at", "completed_at", "delivered_at", "submitted_at")

# (method, path) -> the SDK model its 200 reply must parse as.
REPLY_MODELS: dict[tuple[str, str], Any] = {
    ("GET", "/v2/task"): sdk.Task,
    ("GET", "/v2/tasks"): sdk.GetTasksResponse,
    ("POST", "/v2/task/chat"): sdk.Task,
    ("POST", "/v2/task/metadata"): sdk.Task,
    ("GET", "/v2/annotation"): sdk.Annotation,
    ("GET", "/v2/schema"): sdk.GetSchemaResponse,
    ("POST", "/v2/batch"): sdk.Batch,
    ("GET", "/v2/batch"): sdk.Batch,
    ("GET", "/v2/batches"): sdk.GetBatchesResponse,
    ("POST", "/v2/batch/finalize"): sdk.Batch,
    ("POST", "/v2/batch/pause"): sdk.PauseBatch200Response,
    ("POST", "/v2/batch/resume"): sdk.ResumeBatch200Response,
    ("POST", "/v2/batch/cancel"): sdk.CancelBatch200Response,
    ("POST", "/v2/batch/metadata"): sdk.Batch,
    ("GET", "/v2/project"): sdk.Project,
    ("GET", "/v2/projects"): sdk.GetProjectsResponse,
    ("GET", "/v2/deliveries"): sdk.GetDeliveriesResponse,
    ("GET", "/v2/delivery"): sdk.GetDeliveredTasksResponse,
    ("GET", "/v2/delivery/tasks"): sdk.GetDeliveryTasksResponse,
    ("GET", "/v2/datasets"): sdk.GetDatasetsResponse,
    ("GET", "/v2/datasets/deliveries"): sdk.GetDatasetDeliveriesResponse,
    ("GET", "/v2/datasets/delivery"): sdk.GetDatasetDeliveryResponse,
    ("GET", "/v2/datasets/tasks"): sdk.GetDatasetTasksResponse,
    ("GET", "/v2/datasets/task"): sdk.DatasetTask,
}


def problems(value: Any, where: str = "$") -> list[str]:
    """Every N2 violation in a v2 JSON value, each with its place."""
    found: list[str] = []
    _walk(value, where, None, found)
    return found


def _walk(value: Any, where: str, parent_key: str | None, found: list[str]) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]", parent_key, found)
        return
    if not isinstance(value, dict):
        return
    _check_object(value, where, parent_key, found)
    for key, item in value.items():
        if key == "response" and ("delivery_id" in value or "dataset" in value):
            continue  # a delivered response (also a DatasetTask's) is a free object
        if key in ("value", "metadata", "last_code_run_event"):
            continue  # values and metadata are the customer's or the workforce's own data
        _walk(item, f"{where}.{key}", key, found)


def _check_object(
    obj: dict[str, Any], where: str, parent_key: str | None, found: list[str]
) -> None:
    if "next_token" in obj and obj["next_token"] in ("", None):
        found.append(f"{where}.next_token is {obj['next_token']!r}")
    for key in TIMESTAMPS:
        # null only for an undelivered task's delivered_at (GET /v2/delivery/tasks)
        if key in obj and (obj[key] == "" or (obj[key] is None and key != "delivered_at")):
            found.append(f"{where}.{key} is {obj[key]!r}")
    if parent_key == "annotations":
        _check_annotation(obj, where, found)
    else:
        _check_entity(obj, where, found)
    _check_thread_part(obj, where, parent_key, found)
    if parent_key == "errors" and "type" in obj and obj["type"] not in ERROR_TYPES:
        found.append(f"{where}.type {obj['type']!r} is not an error type")
    if obj.get("attachments"):
        found.append(f"{where}.attachments is not empty (the SDK cannot parse it)")


def _check_entity(obj: dict[str, Any], where: str, found: list[str]) -> None:
    """A task's or a batch's status, and a batch's metadata."""
    if "task_id" in obj and "project" in obj:
        if obj.get("status") not in TASK_STATUSES:
            found.append(f"{where}.status {obj.get('status')!r} is not a task status")
    elif {"id", "name", "status", "project", "created_at"} <= obj.keys():
        if obj["status"] not in BATCH_STATUSES:
            found.append(f"{where}.status {obj['status']!r} is not a batch status")
        if not isinstance(obj.get("metadata"), dict):
            found.append(f"{where}.metadata of a batch is {obj.get('metadata')!r}")


def _check_thread_part(
    obj: dict[str, Any], where: str, parent_key: str | None, found: list[str]
) -> None:
    if parent_key in ("threads", "turns", "messages") and not isinstance(
        obj.get("annotations"), list
    ):
        found.append(f"{where} has no annotations list")
    bad_message = obj.get("role") not in ROLES or not isinstance(obj.get("source_id"), str)
    if parent_key == "messages" and bad_message:
        found.append(f"{where} has a bad role or no source_id")


def _check_annotation(obj: dict[str, Any], where: str, found: list[str]) -> None:
    if obj.get("type") not in ANNOTATION_TYPES:
        found.append(f"{where} is an annotation with type {obj.get('type')!r}")
    for key in ("id", "key"):
        if not isinstance(obj.get(key), str):
            found.append(f"{where} is an annotation without {key}")


def reply_problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """N2 for one HTTP reply: errors in the one error shape, 200s parsed by the SDK."""
    if status != 200:
        if not (
            isinstance(body, dict)
            and set(body) == {"status_code", "error"}
            and body["status_code"] == status
            and isinstance(body["error"], str)
            and body["error"]
        ):
            return [f"{method} {path}: error reply {status} is {body!r}"]
        return []
    found = problems(body)
    model = REPLY_MODELS.get((method, path))
    if model is None:
        return [*found, f"{method} {path}: no SDK model known for this reply"]
    try:
        parsed = model.from_dict(body)
    except Exception as exc:
        return [*found, f"{method} {path}: the SDK cannot parse it: {exc!s:.300}"]
    if parsed is None:
        found.append(f"{method} {path}: the SDK parsed it as None")
    return found
