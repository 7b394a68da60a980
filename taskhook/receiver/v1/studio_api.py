"""Handlers of Scale's Studio API: how a team running its own labeling operation assigns
work. Per world, like the projects they name.

- Assignments: which teammates (receiver/v1/teams_api.py) work on which projects.
  Removing one from a project removes them from its groups too.
- Project groups: named sets of a project's assigned labelers.
- Studio batches: every batch of the world that is not completed, in work order (ranked
  by set_priorities, then the rest oldest first), each given to some groups (none: to
  everyone assigned to its project).
- The workforce side reads its queue at `GET /v1/studio/work?email=...`: the batches that
  labeler works, in that order, with their pending tasks.

A named e-mail must be on the team, a named project in the world, and a group member
assigned to the group's project; otherwise a 400 that names it, and nothing changes.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from taskhook.core import store
from taskhook.core.appkeys import POOL, principal
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.logs import get_logger
from taskhook.core.models import (
    BatchGroups,
    BatchPriorities,
    ProjectGroupCreate,
    ProjectGroupUpdate,
    StudioAssignmentChange,
)
from taskhook.core.principal import Principal
from taskhook.core.replies import StudioBatch, StudioProjectGroup, StudioWork, built
from taskhook.core.responses import ok
from taskhook.receiver.routes import Api, model_body
from taskhook.receiver.v1.params import WorkQuery
from taskhook.receiver.v1.teams_api import check_emails

log = get_logger("taskhook.studio")
api = Api(
    "studio",
    params={
        "project": "The project name (percent-encoded).",
        "group": "The group name (percent-encoded).",
        "name": "The batch name (percent-encoded).",
    },
)
routes = api.routes
Assignments = dict[str, list[str]]  # each teammate's e-mail: the projects assigned to them
CHANGE = model_body(StudioAssignmentChange, "Teammates' e-mails and project names.")


def _listed(names: list[str], what: str) -> str:
    return f"{what}: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else "")


async def _teammates(conn: Any, who: Principal, emails: list[str]) -> dict[str, str]:
    emails = check_emails(emails)
    found = await store.studio_teammates(conn, who.account_id, emails)
    unknown = [e for e in emails if e not in found]
    if unknown:
        raise BadRequest(_listed(unknown, "Not on the team (invite them first)"))
    return found


async def _projects(conn: Any, who: Principal, names: list[str]) -> dict[str, int]:
    found = await store.studio_projects(conn, who, names)
    unknown = [n for n in dict.fromkeys(names) if n not in found]
    if unknown:
        raise BadRequest(_listed(unknown, "No such project"))
    return found


async def _project(conn: Any, who: Principal, name: str) -> int:
    found = await store.studio_projects(conn, who, [name])
    if name not in found:
        raise NotFound(f"Project '{name}' not found.")
    return found[name]


async def _assignments(conn: Any, who: Principal) -> web.Response:
    rows = await store.studio_assignments(conn, who)
    return ok({r["email"]: list(r["projects"]) for r in rows})


def group_json(row: Any) -> StudioProjectGroup:
    """What the SDK's StudioProjectGroup reads."""
    workers = list(row["workers"])
    return built(
        StudioProjectGroup,
        {
            "id": row["id"],
            "name": row["name"],
            "numWorkers": len(workers),
            "isSingleton": False,
            "workers": workers,
        },
    )


def batch_json(row: Any) -> StudioBatch:
    """What the SDK's StudioBatch reads."""
    return built(
        StudioBatch,
        {
            "id": row["public_id"],
            "name": row["name"],
            "projectId": row["project_public_id"],
            "projectName": row["project_name"],
            "batchType": "Production",
            "studioPriority": row["studio_priority"],
            "total": row["total"],
            "completed": row["completed"],
            "groups": list(row["groups"]),
        },
    )


# --- assignments ----------------------------------------------------------------------------


@api.get("/v1/studio/assignments", "List labeler assignments", Assignments)
async def list_studio_assignments(request: web.Request) -> web.Response:
    return await _assignments(request.app[POOL], principal(request))


@api.post("/v1/studio/assignments/add", "Assign teammates to projects", Assignments, body=CHANGE)
async def add_studio_assignments(request: web.Request, body: Any) -> web.Response:
    return await _change_assignments(request, body, store.studio_assign, "studio.assigned")


@api.post(
    "/v1/studio/assignments/remove",
    "Unassign teammates (and their groups)",
    Assignments,
    body=CHANGE,
)
async def remove_studio_assignments(request: web.Request, body: Any) -> web.Response:
    return await _change_assignments(request, body, store.studio_unassign, "studio.unassigned")


async def _change_assignments(
    request: web.Request, body: StudioAssignmentChange, change: Any, event: str
) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        teammates = await _teammates(conn, who, body.emails)
        projects = await _projects(conn, who, body.projects)
        await change(conn, list(projects.values()), list(teammates.values()))
        reply = await _assignments(conn, who)
    log.info(event, emails=len(teammates), projects=len(projects))
    return reply


# --- project groups -------------------------------------------------------------------------


@api.get(
    "/v1/studio/projects/{project}/groups",
    "List a project's groups",
    list[StudioProjectGroup],
    errors=(404,),
)
async def list_project_groups(request: web.Request) -> web.Response:
    pool, who = request.app[POOL], principal(request)
    project_id = await _project(pool, who, request.match_info["project"])
    return ok([group_json(r) for r in await store.studio_groups(pool, project_id)])


@api.post(
    "/v1/studio/projects/{project}/groups",
    "Create a project group",
    StudioProjectGroup,
    errors=(404, 409),
    body=model_body(ProjectGroupCreate, "Name and assigned labelers."),
)
async def create_project_group(request: web.Request, body: ProjectGroupCreate) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        project_id = await _project(conn, who, request.match_info["project"])
        members = await _members(conn, who, project_id, body.emails)
        group_id = secrets.token_hex(12)
        await store.studio_create_group(conn, group_id, project_id, body.name)
        await store.studio_group_members(conn, group_id, members, [])
        [row] = await store.studio_groups(conn, project_id, body.name)
    log.info("studio.group_created", group=body.name, workers=len(members))
    return ok(group_json(row))


@api.put(
    "/v1/studio/projects/{project}/groups/{group}",
    "Add and remove a group's workers",
    StudioProjectGroup,
    errors=(404,),
    body=model_body(ProjectGroupUpdate, "E-mails to add, remove."),
)
async def update_project_group(request: web.Request, body: ProjectGroupUpdate) -> web.Response:
    who = principal(request)
    name = request.match_info["group"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        project_id = await _project(conn, who, request.match_info["project"])
        found = await store.studio_groups(conn, project_id, name)
        if not found:
            raise NotFound(f"Project group '{name}' not found.")
        add = await _members(conn, who, project_id, body.add_emails)
        remove = list((await _teammates(conn, who, body.remove_emails)).values())
        await store.studio_group_members(conn, found[0]["id"], add, remove)
        [row] = await store.studio_groups(conn, project_id, name)
    log.info("studio.group_updated", group=name, added=len(add), removed=len(remove))
    return ok(group_json(row))


async def _members(conn: Any, who: Principal, project_id: int, emails: list[str]) -> list[str]:
    """Teammate ids of `emails`, each of whom must be assigned to the project."""
    if not emails:
        return []
    teammates = await _teammates(conn, who, emails)
    assigned = await store.studio_assigned(conn, project_id, list(teammates.values()))
    missing = [e for e, tid in teammates.items() if tid not in assigned]
    if missing:
        raise BadRequest(_listed(missing, "Not assigned to this project (add them first)"))
    return list(teammates.values())


# --- batches --------------------------------------------------------------------------------


@api.get("/v1/studio/batches", "List open batches in work order", list[StudioBatch])
async def list_studio_batches(request: web.Request) -> web.Response:
    rows = await store.studio_batches(request.app[POOL], principal(request))
    return ok([batch_json(r) for r in rows])


@api.put(
    "/v1/studio/batches/{name}",
    "Give a batch to project groups",
    StudioBatch,
    errors=(404,),
    body=model_body(BatchGroups, "The groups (replaces)."),
)
async def assign_studio_batches(request: web.Request, body: BatchGroups) -> web.Response:
    who = principal(request)
    name = request.match_info["name"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await store.studio_batches(conn, who, name)
        if not found:
            raise NotFound(f"No batch '{name}' that is not completed.")
        wanted = list(dict.fromkeys(body.groups))
        groups = await store.studio_group_ids(conn, found[0]["project_id"], wanted)
        unknown = [g for g in wanted if g not in groups]
        if unknown:
            raise BadRequest(_listed(unknown, "No such project group in the batch's project"))
        await store.studio_set_groups(conn, found[0]["id"], list(groups.values()))
        [row] = await store.studio_batches(conn, who, name)
    log.info("studio.batch_assigned", batch=name, groups=len(groups))
    return ok(batch_json(row))


@api.post(
    "/v1/studio/batches/set_priorities",
    "Rank batches",
    list[StudioBatch],
    body=model_body(BatchPriorities, "Names, first worked first."),
)
async def set_studio_batches_priorities(
    request: web.Request, body: BatchPriorities
) -> web.Response:
    who = principal(request)
    names = list(dict.fromkeys(b.name for b in body.batches))
    return await _prioritize(request, who, names)


@api.post("/v1/studio/batches/reset_priorities", "Clear the ranking", list[StudioBatch])
async def reset_studio_batches_priorities(request: web.Request) -> web.Response:
    return await _prioritize(request, principal(request), [])


async def _prioritize(request: web.Request, who: Principal, names: list[str]) -> web.Response:
    async with request.app[POOL].acquire() as conn, conn.transaction():
        open_batches = {r["name"] for r in await store.studio_batches(conn, who)}
        unknown = [n for n in names if n not in open_batches]
        if unknown:
            raise BadRequest(_listed(unknown, "No such batch that is not completed"))
        await store.studio_set_priorities(conn, who, names)
        rows = await store.studio_batches(conn, who)
    log.info("studio.priorities_set", ranked=len(names))
    return ok([batch_json(r) for r in rows])


# --- the workforce's queue ------------------------------------------------------------------


@api.get(
    "/v1/studio/work",
    "A labeler's queue: the batches they work, in order, with pending tasks",
    list[StudioWork],
    query=WorkQuery,
)
async def studio_work(request: web.Request, query: WorkQuery) -> web.Response:
    """The batches one labeler works, in work order, with their pending tasks."""
    who, pool, email = principal(request), request.app[POOL], query.email
    teammate = (await _teammates(pool, who, [email]))[email.lower()]
    rows = await store.studio_work(pool, who, teammate)
    return ok(
        [
            built(
                StudioWork,
                {
                    "batch": r["name"],
                    "project": r["project_name"],
                    "studioPriority": r["studio_priority"],
                    "pending": r["pending"],
                },
            )
            for r in rows
            if r["pending"]
        ]
    )
