"""Finding the project, batch, task or delivery a v2 request names, by id or by name.

A request that names none of the alternatives it needs is a 400 that lists them; one that
names something unknown (or an id and a name of two different objects) is a 404.
"""

from __future__ import annotations

from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.principal import Principal
from taskhook.core.store import Conn, Row
from taskhook.core.store import v2 as v2store


def _named(kind: str, object_id: str | None, name: str | None) -> str:
    parts = [f"id {object_id!r}"] if object_id is not None else []
    if name is not None:
        parts.append(f"name {name!r}")
    return f"{kind} with " + " and ".join(parts)


def require_one(given: dict[str, str | None], what: str = "") -> None:
    if all(value is None for value in given.values()):
        names = " or ".join(f"'{name}'" for name in given)
        raise BadRequest(f"Missing required parameter{what}: {names}.")


async def project(
    conn: Conn, who: Principal, project_id: str | None, project_name: str | None
) -> Row:
    require_one({"project_id": project_id, "project_name": project_name})
    row = await v2store.find_project(conn, who, project_id, project_name)
    if row is None:
        raise NotFound(f"No {_named('project', project_id, project_name)} was found.")
    return row


async def batch(conn: Conn, who: Principal, batch_id: str | None, batch_name: str | None) -> Row:
    """The batch as v2_list_batches reads it (with its effective status)."""
    require_one({"batch_id": batch_id, "batch_name": batch_name})
    filters = v2store.BatchFilters(ids=[batch_id] if batch_id else None, name=batch_name)
    rows = await v2store.list_batches(conn, who, filters, limit=1)
    if not rows:
        raise NotFound(f"No {_named('batch', batch_id, batch_name)} was found.")
    return rows[0]


async def task(conn: Conn, who: Principal, task_id: str) -> Row:
    row = await v2store.get_task(conn, who, task_id)
    if row is None:
        raise NotFound(f"Task {task_id!r} not found.")
    return row


async def delivery(
    conn: Conn,
    who: Principal,
    delivery_id: str | None,
    delivery_name: str | None,
    project_id: str | None,
    project_name: str | None,
) -> Row:
    """By id, or by name within a project (names are unique per project only)."""
    if delivery_id is None:
        if delivery_name is None:
            raise BadRequest(
                "Missing required parameter: 'delivery_id', or 'delivery_name' with "
                "'project_id' or 'project_name'."
            )
        require_one(
            {"project_id": project_id, "project_name": project_name}, " (with 'delivery_name')"
        )
    internal_project = None
    if project_id is not None or project_name is not None:
        internal_project = (await project(conn, who, project_id, project_name))["id"]
    rows = await v2store.list_deliveries(
        conn, who, delivery_id=delivery_id, project_id=internal_project, name=delivery_name
    )
    if not rows:
        raise NotFound(f"No {_named('delivery', delivery_id, delivery_name)} was found.")
    return rows[0]
