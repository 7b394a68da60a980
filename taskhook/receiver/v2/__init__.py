"""The v2 endpoints: tasks, batches and projects, deliveries, datasets. `routes` is every
one of them, for the app factory."""

from __future__ import annotations

from aiohttp.web import AbstractRouteDef

from taskhook.receiver.v2 import batches_api, datasets_api, deliveries_api, tasks_api

routes: list[AbstractRouteDef] = [
    *tasks_api.routes,
    *batches_api.routes,
    *deliveries_api.routes,
    *datasets_api.routes,
]
