"""Handlers of the v1 project endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from taskhook.core import store
from taskhook.core.appkeys import POOL, principal
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.logs import get_logger
from taskhook.core.models import ProjectCreate
from taskhook.core.responses import ok
from taskhook.core.serialize import TEMPLATE_TYPES, iso, project_json, template_json
from taskhook.core.tasktypes import TASK_TYPES
from taskhook.core.validation import decode_json, parse_model
from taskhook.receiver.idempotency import run_create

log = get_logger("taskhook.projects")
routes = web.RouteTableDef()


def project_not_found(name: str) -> NotFound:
    return NotFound(f"Project '{name}' not found.")


@routes.post("/v1/projects")
async def create_project(request: web.Request) -> web.Response:
    raw = await request.read()
    who = principal(request)

    async def work(conn: Any) -> dict[str, Any]:
        body = parse_model(ProjectCreate, decode_json(raw))
        if body.type not in TASK_TYPES:
            raise BadRequest(f"Unknown task type '{body.type}' for project '{body.name}'.")
        history = []
        if body.params is not None:
            history = [{**body.params, "version": 0, "created_at": iso(datetime.now(UTC))}]
        row = await store.insert_project(
            conn, who, body.name, body.type, history, body.rapid, body.studio, body.datasetId
        )
        log.info("project.created", project=body.name)
        return project_json(row)

    return await run_create(request, raw, work)


@routes.get("/v1/projects")
async def list_projects(request: web.Request) -> web.Response:
    """A bare JSON array, as the SDK's projects() expects."""
    rows = await store.list_projects(request.app[POOL], principal(request))
    return ok([project_json(r) for r in rows])


@routes.get("/v1/projects/{name}")
async def get_project(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    row = await store.get_project(request.app[POOL], principal(request), name)
    if row is None:
        raise project_not_found(name)
    return ok(project_json(row))


@routes.get("/v1/projects/{name}/taskTemplates")
async def get_template(request: web.Request) -> web.Response:
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


@routes.post("/v1/projects/{name}/setParams")
async def set_params(request: web.Request) -> web.Response:
    """Appends a new version to param_history; new tasks record that version."""
    name = request.match_info["name"]
    params = decode_json(await request.read())
    if not isinstance(params, dict):
        raise BadRequest("body must be a JSON object of project parameters.")
    params = {k: v for k, v in params.items() if k not in ("version", "created_at")}
    row = await store.append_project_params(request.app[POOL], principal(request), name, params)
    if row is None:
        raise project_not_found(name)
    log.info("project.params_set", project=name, version=len(row["param_history"]) - 1)
    return ok(project_json(row))
