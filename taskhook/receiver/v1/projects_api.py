"""Handlers of the v1 project endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from taskhook.core import replies, store
from taskhook.core.appkeys import POOL, principal
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.logs import get_logger
from taskhook.core.models import ProjectCreate
from taskhook.core.replies import Project
from taskhook.core.responses import ok
from taskhook.core.serialize import TEMPLATE_TYPES, iso, project_json, template_json
from taskhook.core.tasktypes import TASK_TYPES
from taskhook.core.validation import decode_json
from taskhook.receiver.routes import Api, Body, model_body

log = get_logger("taskhook.projects")
NAME = "The project name (percent-encoded, as the SDK sends it)."
api = Api("projects", params={"name": NAME}, errors=(404,))
routes = api.routes


def project_not_found(name: str) -> NotFound:
    return NotFound(f"Project '{name}' not found.")


@api.post(
    "/v1/projects",
    "Create a project",
    Project,
    errors=(),
    idempotent=True,
    body=model_body(ProjectCreate, "The project; `params` starts its history."),
)
async def create_project(request: web.Request, conn: Any, body: ProjectCreate) -> Project:
    if body.type not in TASK_TYPES:
        raise BadRequest(f"Unknown task type '{body.type}' for project '{body.name}'.")
    history = []
    if body.params is not None:
        history = [{**body.params, "version": 0, "created_at": iso(datetime.now(UTC))}]
    row = await store.insert_project(
        conn,
        principal(request),
        body.name,
        body.type,
        history,
        body.rapid,
        body.studio,
        body.datasetId,
    )
    log.info("project.created", project=body.name)
    return project_json(row)


@api.get("/v1/projects", "List projects (a bare array)", list[Project], errors=())
async def list_projects(request: web.Request) -> web.Response:
    """A bare JSON array, as the SDK's projects() expects."""
    rows = await store.list_projects(request.app[POOL], principal(request))
    return ok([project_json(r) for r in rows])


@api.get("/v1/projects/{name}", "Get a project", Project)
async def get_project(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    row = await store.get_project(request.app[POOL], principal(request), name)
    if row is None:
        raise project_not_found(name)
    return ok(project_json(row))


@api.get(
    "/v1/projects/{name}/taskTemplates",
    "Get a textcollection or chat project's task template",
    replies.TaskTemplate,
    description="One template per project, made of its current params: `template_variables` "
    "and `response_schema` come from them and `version` is their version. Other project "
    "types: 400.",
)
async def get_project_template(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    row = await store.get_project(request.app[POOL], principal(request), name)
    if row is None:
        raise project_not_found(name)
    if row["type"] not in TEMPLATE_TYPES:
        raise BadRequest(
            f"Project '{name}' is a {row['type']} project; only textcollection and chat "
            "projects have task templates."
        )
    return ok(template_json(row))


def _params(raw: bytes) -> dict[str, Any]:
    params = decode_json(raw)
    if not isinstance(params, dict):
        raise BadRequest("body must be a JSON object of project parameters.")
    return {k: v for k, v in params.items() if k not in ("version", "created_at")}


@api.post(
    "/v1/projects/{name}/setParams",
    "Append a new version of the project's params",
    Project,
    body=Body(
        {"type": "object"},
        "The new params (defaults for new tasks); `version` and `created_at` are set by the "
        "server.",
        _params,
    ),
)
async def set_project_params(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Appends a new version to param_history; new tasks record that version."""
    name, params = request.match_info["name"], body
    row = await store.append_project_params(request.app[POOL], principal(request), name, params)
    if row is None:
        raise project_not_found(name)
    log.info("project.params_set", project=name, version=len(row["param_history"]) - 1)
    return ok(project_json(row))
