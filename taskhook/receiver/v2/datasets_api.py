"""v2 dataset endpoints: the six dataset calls of the SDK's `client.v2`.

A dataset is the set of projects that name it: a project made with `datasetId`
(`create_project(..., dataset_id=...)`) belongs to that dataset, whose id is also its
name. Data gets into it as into any v2 delivery: a `task.delivered` event (or `taskhook
deliveries create`) puts a completed task into a named delivery of its project; the
deliveries of a dataset's projects are the dataset's deliveries, and their tasks, with
the response as delivered, are its tasks. A task's response may name files uploaded here
(their id or attachment_url); `response_url/{attachment_id}` redirects to such a file.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core import store
from taskhook.core.appkeys import POOL, principal
from taskhook.core.errors import NotFound
from taskhook.core.jsoncodec import dumps
from taskhook.core.models_v2 import (
    DatasetDeliveryOut,
    DatasetTaskOut,
    GetDatasetDeliveriesResponse,
    GetDatasetDeliveryResponse,
    GetDatasetsResponse,
    GetDatasetTasksResponse,
)
from taskhook.core.store import v2 as v2store
from taskhook.receiver.routes import Api
from taskhook.receiver.v2.params import (
    DatasetDeliveriesQuery,
    DatasetDeliveryQuery,
    DatasetTaskQuery,
    DatasetTasksQuery,
    Pager,
    reply,
)
from taskhook.v2.serialize import dataset_delivery_out, dataset_out, dataset_task_out

api = Api("v2", prefix="v2_", errors=(404,))
routes = api.routes
PAGE_KEY = ("delivered_at", "page_key")


@api.get("/v2/datasets", "The datasets (ids the projects name)", GetDatasetsResponse)
async def get_datasets(request: web.Request) -> web.Response:
    ids = await v2store.list_datasets(request.app[POOL], principal(request))
    return reply(GetDatasetsResponse(datasets=[dataset_out(i) for i in ids]))


async def _dataset(request: web.Request, dataset_id: str | None) -> str | None:
    """The `dataset_id` asked for, if any; an unknown one is a 404, as an unknown project is."""
    if dataset_id is not None:
        known = await v2store.list_datasets(request.app[POOL], principal(request))
        if dataset_id not in known:
            raise NotFound(f"Dataset '{dataset_id}' not found.")
    return dataset_id


@api.get(
    "/v2/datasets/deliveries",
    "A dataset's deliveries (its projects'), newest first",
    GetDatasetDeliveriesResponse,
    query=DatasetDeliveriesQuery,
)
async def get_dataset_deliveries(
    request: web.Request, query: DatasetDeliveriesQuery
) -> web.Response:
    """The deliveries of one dataset (or of all), newest first."""
    rows = await v2store.dataset_deliveries(
        request.app[POOL],
        principal(request),
        dataset_id=await _dataset(request, query.dataset_id),
        delivered_after=query.delivered_after,
        delivered_before=query.delivered_before,
    )
    deliveries = [dataset_delivery_out(r, "dataset" in query.expand) for r in rows]
    return reply(GetDatasetDeliveriesResponse(deliveries=deliveries))


@api.get(
    "/v2/datasets/delivery",
    "One dataset delivery and its tasks",
    GetDatasetDeliveryResponse,
    query=DatasetDeliveryQuery,
)
async def get_dataset_delivery(request: web.Request, query: DatasetDeliveryQuery) -> web.Response:
    """One delivery of a dataset and its tasks, newest first, paged."""
    pool, who, expand = request.app[POOL], principal(request), query.expand
    delivery_id = query.delivery_id
    found = await v2store.dataset_deliveries(pool, who, delivery_id=delivery_id)
    if not found:
        raise NotFound(f"No dataset delivery with id '{delivery_id}'.")
    pager = Pager(request, f"dataset-delivery|{delivery_id}", query)
    filters = v2store.DatasetTaskFilters(delivery_id=delivery_id)
    rows, token = pager.page(
        await v2store.dataset_tasks(pool, who, filters, pager.after, pager.limit + 1), PAGE_KEY
    )
    shown: str | DatasetDeliveryOut = delivery_id
    if "delivery" in expand:
        shown = dataset_delivery_out(found[0], "dataset" in expand)
    tasks = [dataset_task_out(r, expand) for r in rows]
    return reply(GetDatasetDeliveryResponse(delivery=shown, tasks=tasks, next_token=token))


@api.get(
    "/v2/datasets/tasks",
    "Delivered tasks of a dataset, one per task and delivery, newest first",
    GetDatasetTasksResponse,
    query=DatasetTasksQuery,
)
async def get_dataset_tasks(request: web.Request, query: DatasetTasksQuery) -> web.Response:
    """Delivered tasks of a dataset (or of all), one per task and delivery, newest first."""
    pool, who = request.app[POOL], principal(request)
    filters = v2store.DatasetTaskFilters(
        dataset_id=await _dataset(request, query.dataset_id),
        delivery_id=query.delivery_id,
        delivered_after=query.delivered_after,
        delivered_before=query.delivered_before,
    )
    scope = f"dataset-tasks|{filters.dataset_id}|{filters.delivery_id}"
    pager = Pager(request, scope, query)
    rows, token = pager.page(
        await v2store.dataset_tasks(pool, who, filters, pager.after, pager.limit + 1), PAGE_KEY
    )
    tasks = [dataset_task_out(r, query.expand) for r in rows]
    return reply(GetDatasetTasksResponse(tasks=tasks, next_token=token))


@api.get(
    "/v2/datasets/task",
    "A task as last delivered into a dataset",
    DatasetTaskOut,
    query=DatasetTaskQuery,
)
async def get_dataset_task(request: web.Request, query: DatasetTaskQuery) -> web.Response:
    """A task as last delivered into a dataset."""
    row = await _latest(request, query.task_id)
    return reply(dataset_task_out(row, query.expand))


@api.get(
    "/v2/datasets/task/{task_id}/response_url/{attachment_id}",
    "Redirect (302) to a file that the task's delivered response names",
    None,
    redirect="To the file's bytes (its attachment_url path).",
    params={
        "task_id": "The task's id.",
        "attachment_id": "A file id (POST /v1/files/upload) the response names.",
    },
)
async def get_dataset_task_response_url(request: web.Request) -> web.Response:
    """302 to a file of this account and world that the task's delivered response names
    (by id or by attachment_url); else 404."""
    attachment_id = request.match_info["attachment_id"]
    row = await _latest(request, request.match_info["task_id"])
    found = await store.get_file(request.app[POOL], principal(request), attachment_id)
    if found is None or attachment_id not in dumps(row["response"] or {}):
        raise NotFound(f"No attachment '{attachment_id}' in this task's delivered response.")
    return web.Response(status=302, headers={"Location": f"/files/{found['id']}/{found['token']}"})


async def _latest(request: web.Request, task_id: str) -> Any:
    filters = v2store.DatasetTaskFilters(task_id=task_id)
    rows = await v2store.dataset_tasks(request.app[POOL], principal(request), filters, None, 1)
    if not rows:
        raise NotFound(f"No task '{task_id}' delivered into a dataset.")
    return rows[0]
