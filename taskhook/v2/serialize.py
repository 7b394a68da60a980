"""Database rows to Scale's v2 JSON shapes, built through the models of core/models_v2.py.

v1 and v2 are two views of the same rows: core/serialize.py shows a task as v1 does
(`type`, `params`, `response`, ...), this module shows it as v2 does (`project` and `batch`
by id, `threads`, `errors`, `sensitive_content_reports`). A v2 chat task's results live in
its `response` (`{"threads": [...]}` or `{"sensitive_content_reports": [...]}`), so v1
readers and v1-shaped callbacks carry them too; a v2 error's details live in
`response.errors` next to v1's `response.error`.

Every function returns a model; `dump` turns it into JSON with the caller's `opts`. Stored
content that does not validate (e.g. a v1 customer fix whose response has a malformed
`threads`) is left out and logged, never emitted: a reply the SDK cannot parse would fail
the whole call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from taskhook.core.logs import get_logger
from taskhook.core.models_v2 import (
    BatchOut,
    DatasetDeliveryMetadata,
    DatasetDeliveryOut,
    DatasetOut,
    DatasetTaskOut,
    DeliveredTaskDoc,
    DeliveryOut,
    ErrorDetail,
    ProjectOut,
    SensitiveContentReport,
    TaskOut,
    Thread,
)
from taskhook.core.serialize import iso
from taskhook.core.store import RowLike

log = get_logger("taskhook.v2")
THREADS = TypeAdapter(list[Thread])
ERRORS = TypeAdapter(list[ErrorDetail])
REPORTS = TypeAdapter(list[SensitiveContentReport])


def dump(model: BaseModel, opts: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON of a v2 reply: no nulls (the SDK treats absent and null alike, and `""` is
    never used for "none"), aliases (`schema`, `json`), and the `opts` asked for."""
    return model.model_dump(
        mode="json", exclude_none=True, by_alias=True, context={"opts": frozenset(opts)}
    )


def project_out(row: RowLike) -> ProjectOut:
    # `types` is left out: v1 project types are task types, not Scale's GenAI project types.
    return ProjectOut(id=row["public_id"], name=row["name"], created_at=_time(row["created_at"]))


def batch_out(row: RowLike, project: ProjectOut | None = None) -> BatchOut:
    """A row of v2_list_batches; `project` expands the project id into the object."""
    return BatchOut(
        id=row["public_id"],
        name=row["name"],
        project=project or row["project_public_id"],
        created_at=_time(row["created_at"]),
        completed_at=iso(row["completed_at"]),
        status=row["effective_status"],
        callback=row["callback"] or None,
        metadata=row["metadata"] or {},
    )


def task_out(
    row: RowLike,
    project: ProjectOut | None = None,
    batch: BatchOut | None = None,
) -> TaskOut:
    """A row of v2_get_task / v2_list_tasks (with project_public_id, batch_public_id)."""
    batch_ref: str | BatchOut | None = batch or row["batch_public_id"]
    return TaskOut(
        task_id=row["id"],
        project=project or row["project_public_id"] or "",
        batch=batch_ref,
        status=row["status"],
        created_at=_time(row["created_at"]),
        completed_at=iso(row["completed_at"]),
        metadata=row["metadata"],
        **_results(row),
    )


def delivery_out(row: RowLike, project: ProjectOut | None = None) -> DeliveryOut:
    """A row of v2_list_deliveries."""
    return DeliveryOut(
        id=row["id"],
        name=row["name"],
        task_count=int(row["task_count"]),
        delivered_at=_time(row["delivered_at"]),
        project=project or row["project_public_id"],
    )


def delivered_doc(row: RowLike, schema_id: str | None) -> DeliveredTaskDoc:
    """A row of v2_delivered_responses; the delivery fields are null when undelivered."""
    response = row["response"]
    return DeliveredTaskDoc(
        task_id=row["id"],
        created_at=_time(row["created_at"]),
        delivery_id=row["delivery_id"],
        delivered_at=iso(row["delivered_at"]),
        response_schema_id=schema_id if row["delivery_id"] is not None else None,
        response=response if isinstance(response, dict) else None,
    )


def dataset_out(dataset_id: str) -> DatasetOut:
    """taskhook keeps no other name for a dataset than the id its projects give it."""
    return DatasetOut(id=dataset_id, name=dataset_id)


def dataset_delivery_out(
    row: RowLike, expand_dataset: bool = False, prefix: str = ""
) -> DatasetDeliveryOut:
    """A row of v2_dataset_deliveries (prefix ""), or the delivery part of a row of
    v2_dataset_tasks (prefix "delivery_")."""
    return DatasetDeliveryOut(
        id=row[f"{prefix}id"] if prefix else row["id"],
        name=row[f"{prefix}name"],
        delivered_at=_time(row[f"{prefix}delivered_at"]),
        dataset=dataset_out(row["dataset_id"]) if expand_dataset else row["dataset_id"],
        metadata=DatasetDeliveryMetadata(task_count=int(row["task_count"])),
    )


def dataset_task_out(row: RowLike, expand: Iterable[str] = ()) -> DatasetTaskOut:
    """A row of v2_dataset_tasks; `expand` may name dataset and delivery."""
    expand = frozenset(expand)
    dataset = "dataset" in expand
    return DatasetTaskOut(
        task_id=row["task_id"],
        dataset=dataset_out(row["dataset_id"]) if dataset else row["dataset_id"],
        delivery=dataset_delivery_out(row, dataset, "delivery_")
        if "delivery" in expand
        else row["delivery_id"],
        response=row["response"] or {},
    )


def _time(value: Any) -> str:
    text = iso(value)
    assert text is not None
    return text


def _results(row: RowLike) -> dict[str, Any]:
    """threads, errors, sensitive_content_reports by status: only a completed task
    has threads (others have `[]`); a reported one has reports and no `threads` key; an
    errored one has `errors`."""
    status, response = row["status"], row["response"]
    response = response if isinstance(response, dict) else {}
    if status == "completed":
        if "sensitive_content_reports" in response and "threads" not in response:
            reports = _valid(REPORTS, response["sensitive_content_reports"], row)
            if reports is not None:
                return {"sensitive_content_reports": reports}
        return {"threads": threads_of(response, row)}
    if status == "error":
        return {"threads": [], "errors": errors_of(response, row)}
    return {"threads": []}


def threads_of(response: Mapping[str, Any], row: RowLike) -> list[Thread]:
    if "threads" not in response:
        return []
    return _valid(THREADS, response["threads"], row) or []


def errors_of(response: Mapping[str, Any], row: RowLike) -> list[ErrorDetail]:
    """v2 `errors` as reported; else v1's `error` text as one untyped error."""
    if "errors" in response:
        errors = _valid(ERRORS, response["errors"], row)
        if errors is not None:
            return errors
    message = response.get("error")
    return [ErrorDetail(message=message)] if isinstance(message, str) else []


def _valid(adapter: TypeAdapter[Any], value: Any, row: RowLike) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        log.warning("v2.stored_content_invalid", task_id=row["id"], error=str(exc)[:500])
        return None
