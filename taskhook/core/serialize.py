"""Database rows to the JSON shapes of Scale's v1 API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from taskhook.core.replies import Batch, LimitedTask, Project, Task, TaskTemplate, built
from taskhook.core.store import RowLike


def iso(ts: datetime | None) -> str | None:
    """Scale's timestamp form: UTC, milliseconds, 'Z' ("2016-06-23T09:09:34.752Z")."""
    if ts is None:
        return None
    if ts.tzinfo is not UTC:  # asyncpg's timestamptz values are already in UTC
        ts = ts.astimezone(UTC)
    # isoformat ends in "+00:00" here; it is several times cheaper than strftime.
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"


# Keys present only while they hold a value (the SDK tests check absence, e.g. of tags).
_OPTIONAL = (
    "batch",
    "response",
    "callback_succeeded",
    "customer_review_status",
    "customer_review_comments",
    "prior_responses",
    "unique_id",
    "tags",
    "priority",
)


def task_json(row: RowLike) -> Task:
    """A task as GET /v1/task/{id} returns it."""
    return built(Task, task_fields(row))


def task_fields(row: RowLike) -> dict[str, Any]:
    """task_json's keys and values, as a dict to build a callback body from."""
    task: dict[str, Any] = {
        "task_id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "project": row["project"],
        "instruction": row["instruction"],
        "callback_url": row["callback_url"],
        "params": row["params"],
        "metadata": row["metadata"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "audits": row["audits"],
        "project_param_version": row["project_param_version"],
        "work_started": row["work_started"],
        "is_test": row["is_test"],
    }
    if row["completed_at"] is not None:
        task["completed_at"] = iso(row["completed_at"])
    for key in _OPTIONAL:
        if row[key] is not None:
            task[key] = list(row[key]) if key == "tags" else row[key]
    if row["times_redone"]:
        task["times_redone"] = row["times_redone"]
    return task


def limited_task_json(row: RowLike) -> LimitedTask:
    """`limited_response=true`: only the fields the SDK documents for it."""
    fields = {
        "task_id": row["id"],
        "status": row["status"],
        "metadata": row["metadata"],
        "project": row["project"],
    }
    return built(LimitedTask, fields)


def batch_json(row: RowLike) -> Batch:
    return built(Batch, batch_fields(row))


def batch_fields(row: RowLike) -> dict[str, Any]:
    """batch_json's keys and values, as a dict (the body of a batch's callback)."""
    return {
        "name": row["name"],
        "project": row["project_name"],
        "status": row["effective_status"],
        "callback": row["callback"],
        "calibration_batch": row["calibration_batch"],
        "self_label_batch": row["self_label_batch"],
        "metadata": row["metadata"],
        "created_at": iso(row["created_at"]),
    }


def project_json(row: RowLike) -> Project:
    project = {
        "name": row["name"],
        "type": row["type"],
        "param_history": row["param_history"],
        "rapid": row["rapid"],
        "studio": row["studio"],
        "created_at": iso(row["created_at"]),
    }
    if row["dataset_id"] is not None:
        project["datasetId"] = row["dataset_id"]
    return built(Project, project)


# Scale's SDK: "only TextCollection and Chat task types support Task Templates"; the chat
# family shares the chat template.
TEMPLATE_TYPES = frozenset({"textcollection", "chat", "chatexperimental", "chatlite", "multichat"})


def template_json(row: RowLike) -> TaskTemplate:
    """A project's task template, as get_project_template reads it. taskhook keeps one
    template per project, made of its current params: `template_variables` and
    `response_schema` from them, `version` their version (0 before any params)."""
    history = row["param_history"]
    current = history[-1] if history else {}
    template = {
        "id": row["public_id"],
        "version": current.get("version", 0),
        "created_at": iso(row["created_at"]),
        "updated_at": current.get("created_at") or iso(row["created_at"]),
        "template_variables": current.get("template_variables") or {},
        "auto_onboard_enabled": False,
    }
    if current.get("response_schema") is not None:
        template["response_schema"] = current["response_schema"]
    return built(TaskTemplate, template)
