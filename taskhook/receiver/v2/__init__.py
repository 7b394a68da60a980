"""The v2 endpoints: tasks, batches and projects, deliveries, datasets. `routes` is every
one of them, for the app factory."""

from __future__ import annotations

from aiohttp.web import RouteDef

from taskhook.receiver.v2 import batches_api, datasets_api, deliveries_api, tasks_api

routes: list[RouteDef] = [
    *tasks_api.routes,  # type: ignore[list-item]
    *batches_api.routes,  # type: ignore[list-item]
    *deliveries_api.routes,  # type: ignore[list-item]
    *datasets_api.routes,  # type: ignore[list-item]
]
