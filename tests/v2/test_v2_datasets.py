"""The six dataset calls of `client.v2` through the official SDK: a dataset is the projects
that name it (datasetId); its deliveries and tasks are those projects' v2 deliveries, made
with `task.delivered` events; a delivered response may name an uploaded file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from scaleapi.api_client.v2 import (
    GetDatasetDeliveriesResponse,
    GetDatasetDeliveryResponse,
    GetDatasetsResponse,
    GetDatasetTasksResponse,
    V2Api,
)
from scaleapi.api_client.v2.exceptions import NotFoundException

from tests.conftest import Api
from tests.v2.helpers import Ingest, event, raises, run

D1_AT = datetime(2025, 3, 1, 12, tzinfo=UTC)
D2_AT = datetime(2025, 2, 1, 12, tzinfo=UTC)


async def project_in(live: Api, name: str, dataset: str | None) -> None:
    body: dict[str, Any] = {"name": name, "type": "categorization"}
    if dataset is not None:
        body["datasetId"] = dataset
    status, reply = await live.call("POST", "/v1/projects", json=body)
    assert status == 200, reply


async def delivered(
    live: Api,
    ingest: Ingest,
    project: str,
    delivery: str,
    at: datetime,
    response: dict[str, Any] | None = None,
) -> str:
    """A task of `project` completed with `response` and put into `delivery`."""
    task = await live.task(project=project)
    response = response or {"category": "x"}
    await ingest.applied(event("completed", task["task_id"], response=response))
    await ingest.applied(
        event("delivered", task["task_id"], delivery_name=delivery, occurred_at=at.isoformat())
    )
    return str(task["task_id"])


@pytest.fixture
async def world(live: Api, http: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    """Dataset ds1 (projects a and b), and project c in no dataset; d1 (two tasks of a),
    d2 (one of b), d3 (one of c)."""
    ingest = Ingest(http, base_url)
    await project_in(live, "a", "ds1")
    await project_in(live, "b", "ds1")
    await project_in(live, "c", None)
    t1 = await delivered(live, ingest, "a", "d1", D1_AT)
    t2 = await delivered(live, ingest, "a", "d1", D1_AT)
    t3 = await delivered(live, ingest, "b", "d2", D2_AT)
    await delivered(live, ingest, "c", "d3", D1_AT)
    return {"tasks": [t1, t2, t3], "ingest": ingest}


async def test_datasets_and_their_deliveries(v2: V2Api, world: dict[str, Any]) -> None:
    got = await run(v2.get_datasets)
    assert isinstance(got, GetDatasetsResponse)
    assert [(d.id, d.name) for d in got.datasets] == [("ds1", "ds1")]
    deliveries = await run(v2.get_dataset_deliveries, dataset_id="ds1")
    assert isinstance(deliveries, GetDatasetDeliveriesResponse)
    assert [(d.name, d.metadata.task_count) for d in deliveries.deliveries] == [
        ("d1", 2),
        ("d2", 1),
    ]
    d1 = deliveries.deliveries[0]
    assert d1.delivered_at == D1_AT and d1.dataset.actual_instance == "ds1"
    after = await run(v2.get_dataset_deliveries, dataset_id="ds1", delivered_after=D2_AT)
    assert [d.name for d in after.deliveries] == ["d1"]
    expanded = await run(v2.get_dataset_deliveries, expand=["dataset"])
    assert expanded.deliveries[0].dataset.actual_instance.name == "ds1"
    await raises(NotFoundException, v2.get_dataset_deliveries, dataset_id="nope")
    await raises(NotFoundException, v2.get_dataset_tasks, dataset_id="nope")


async def test_dataset_delivery_and_tasks_page(v2: V2Api, world: dict[str, Any]) -> None:
    t1, t2, t3 = world["tasks"]
    d1 = (await run(v2.get_dataset_deliveries, dataset_id="ds1")).deliveries[0]
    page = await run(v2.get_dataset_delivery, delivery_id=d1.id, limit=1)
    assert isinstance(page, GetDatasetDeliveryResponse)
    assert page.delivery.actual_instance == d1.id and page.next_token
    rest = await run(v2.get_dataset_delivery, delivery_id=d1.id, next_token=page.next_token)
    assert {page.tasks[0].task_id, rest.tasks[0].task_id} == {t1, t2} and not rest.next_token
    full = await run(v2.get_dataset_delivery, delivery_id=d1.id, expand=["delivery", "dataset"])
    assert full.delivery.actual_instance.name == "d1"
    assert full.tasks[0].delivery.actual_instance.dataset.actual_instance.id == "ds1"
    every = await run(v2.get_dataset_tasks, dataset_id="ds1")
    assert isinstance(every, GetDatasetTasksResponse)
    assert {t.task_id for t in every.tasks} == {t1, t2, t3}
    assert every.tasks[0].response == {"category": "x"}
    only = await run(v2.get_dataset_tasks, dataset_id="ds1", delivered_before=D1_AT)
    assert [t.task_id for t in only.tasks] == [t3]
    one = await run(v2.get_dataset_task, task_id=t3, expand=["delivery"])
    assert one.delivery.actual_instance.name == "d2" and one.dataset.actual_instance == "ds1"
    await raises(NotFoundException, v2.get_dataset_task, task_id="0" * 24)
    await raises(NotFoundException, v2.get_dataset_delivery, delivery_id="nope")


async def test_response_url_redirects_to_a_named_file(
    v2: V2Api, live: Api, world: dict[str, Any], http: aiohttp.ClientSession, base_url: str
) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"label file", filename="labels.txt")
    async with http.post(
        f"{base_url}/v1/files/upload", data=form, headers={"Authorization": f"Bearer {live.key}"}
    ) as resp:
        uploaded = await resp.json()
    task_id = await delivered(
        live, world["ingest"], "a", "d4", D1_AT, {"category": "x", "file": uploaded["id"]}
    )
    url = f"{base_url}/v2/datasets/task/{task_id}/response_url/{uploaded['id']}"
    auth = {"Authorization": f"Bearer {live.key}"}
    async with http.get(url, headers=auth, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert uploaded["attachment_url"].endswith(location)
    async with http.get(base_url + location) as resp:
        assert await resp.read() == b"label file"
    # The SDK's call follows the redirect to the file (its 302 has no body model).
    sdk_reply = await run(
        v2.get_dataset_task_response_url_with_http_info,
        task_id=task_id,
        attachment_id=uploaded["id"],
    )
    assert sdk_reply.status_code == 200 and sdk_reply.raw_data == b"label file"
    await run(v2.get_dataset_task_response_url, task_id=task_id, attachment_id=uploaded["id"])
    with pytest.raises(NotFoundException):
        await run(v2.get_dataset_task_response_url, task_id=task_id, attachment_id="0" * 24)
    other = world["tasks"][0]  # its response names no file
    async with http.get(
        f"{base_url}/v2/datasets/task/{other}/response_url/{uploaded['id']}", headers=auth
    ) as resp:
        assert resp.status == 404
