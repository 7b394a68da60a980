"""Handlers of evaluation and training tasks (the SDK's create_evaluation_task and
create_training_task) and their lists on a project.

Scale uses them to train and to assess its labelers on a Rapid project. In a self-hosted
workforce taskhook stores them and serves them to the workforce's tooling: a training
task is shown to a new labeler with its `expected_response` as the worked answer; an
evaluation task is given to a labeler and the answer compared with `expected_response`
(with an `initial_response`, the labeler reviews that answer instead of starting empty).
They are not tasks: never listed among them, never worked through events, never called
back. The body is a task create's (validated the same way, for the same types Scale
accepts), plus `expected_response`; the project must exist, and need not be Rapid.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from taskhook.core import store
from taskhook.core.appkeys import POOL, principal
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.logs import get_logger
from taskhook.core.models import TaskCreate
from taskhook.core.replies import QualityTask, built
from taskhook.core.responses import ok
from taskhook.core.serialize import iso
from taskhook.core.tasktypes import check_required
from taskhook.core.validation import check_metadata, decode_json, parse_model
from taskhook.receiver.routes import Api, Body
from taskhook.receiver.v1.projects_api import NAME

log = get_logger("taskhook.quality")
api = Api("projects", params={"name": NAME})
routes = api.routes

# The task types the SDK documents for both calls.
QUALITY_TYPES = frozenset(
    {
        "documenttranscription",
        "segmentannotation",
        "videoplaybackannotation",
        "imageannotation",
        "textcollection",
        "namedentityrecognition",
    }
)


def quality_json(row: Any) -> QualityTask:
    """What the SDK's EvaluationTask and TrainingTask read (id, expected_response)."""
    out = {
        "id": row["id"],
        "type": row["type"],
        "project": row["project_name"],
        "instruction": row["instruction"],
        "params": row["params"],
        "expected_response": row["expected_response"],
        "metadata": row["metadata"],
        "created_at": iso(row["created_at"]),
    }
    if row["initial_response"] is not None:
        out["initial_response"] = row["initial_response"]
    return built(QualityTask, out)


def _response(data: dict[str, Any], name: str, required: bool) -> Any:
    value = data.pop(name, None)
    if value is None and not required:
        return None
    if not isinstance(value, dict) or not value:
        raise BadRequest(f"'{name}' must be a non-empty JSON object, as a task's response is.")
    return value


def _quality_type(kind: str) -> Any:
    """The path's type is checked before the body is read."""

    def check(request: web.Request) -> None:
        task_type = request.match_info["type"]
        if task_type not in QUALITY_TYPES:
            raise BadRequest(
                f"Task type '{task_type}' has no {kind} tasks; these do: "
                + ", ".join(sorted(QUALITY_TYPES))
                + "."
            )

    return check


def _object(raw: bytes) -> dict[str, Any]:
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object.")
    return data


def _create_op(kind: str) -> Any:
    return api.post(
        f"/v1/{kind}_tasks/{{type}}",
        f"Create a {kind} task",
        QualityTask,
        guard=_quality_type(kind),
        params={"type": {"description": "The task type.", "enum": sorted(QUALITY_TYPES)}},
        body=Body(
            {"type": "object", "required": ["project", "expected_response"]},
            "A task create's body for this type, plus `expected_response` (and, for an "
            "evaluation task, an optional `initial_response`).",
            _object,
        ),
    )


def _list_op(kind: str) -> Any:
    return api.get(
        f"/v1/projects/{{name}}/{kind}_tasks",
        f"List a project's {kind} tasks",
        list[QualityTask],
        errors=(404,),
    )


async def _create(request: web.Request, kind: str, data: dict[str, Any]) -> web.Response:
    task_type, who = request.match_info["type"], principal(request)
    expected = _response(data, "expected_response", required=True)
    initial = _response(data, "initial_response", required=False)
    if initial is not None and kind == "training":
        raise BadRequest("'initial_response' is for evaluation tasks only.")
    body = parse_model(TaskCreate, data)
    if body.project is None:
        raise BadRequest(f"Missing required parameter 'project': {kind} tasks live on one.")
    params = body.params()
    check_required(task_type, {**params, "instruction": body.instruction})
    pool = request.app[POOL]
    project = await store.get_project(pool, who, body.project)
    if project is None:
        raise BadRequest(f"Project '{body.project}' not found.")
    row = await store.insert_quality_task(
        pool,
        who,
        {
            "id": secrets.token_hex(12),
            "kind": kind,
            "type": task_type,
            "project_id": project["id"],
            "instruction": body.instruction,
            "params": params,
            "expected_response": expected,
            "initial_response": initial,
            "metadata": check_metadata(body.metadata),
        },
    )
    log.info("quality_task.created", kind=kind, quality_task_id=row["id"], type=task_type)
    return ok(quality_json(row))


@_create_op("evaluation")
async def create_evaluation_task(request: web.Request, body: dict[str, Any]) -> web.Response:
    return await _create(request, "evaluation", body)


@_create_op("training")
async def create_training_task(request: web.Request, body: dict[str, Any]) -> web.Response:
    return await _create(request, "training", body)


@_list_op("evaluation")
async def list_evaluation_tasks(request: web.Request) -> web.Response:
    return await _list(request, "evaluation")


@_list_op("training")
async def list_training_tasks(request: web.Request) -> web.Response:
    return await _list(request, "training")


async def _list(request: web.Request, kind: str) -> web.Response:
    name = request.match_info["name"]
    project = await store.get_project(request.app[POOL], principal(request), name)
    if project is None:
        raise NotFound(f"Project '{name}' not found.")
    rows = await store.list_quality_tasks(request.app[POOL], project["id"], kind)
    return ok([quality_json(r) for r in rows])
