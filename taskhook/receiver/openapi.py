"""The OpenAPI 3.1 description of every receiver endpoint, served at `GET /openapi.json`.

Built from the routes' declarations (routes.py): each operation's query model gives its
parameters, its body and reply types give the component schemas (pydantic's JSON Schema),
and its error codes the error responses. Rules enforced outside pydantic are stated on the
models themselves (Field constraints, WithJsonSchema, json_schema_extra), so the document
says what the server really accepts and answers.

tests/test_openapi.py checks that this document and the aiohttp router agree, that the
document is valid OpenAPI 3.1, and fuzzes every operation against a live server.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from taskhook import __version__
from taskhook.core import ops
from taskhook.core.replies import Error, Health, Ready
from taskhook.core.tasktypes import TASK_TYPES, create_schema
from taskhook.receiver.idempotency import IDEMPOTENCY_KEY
from taskhook.receiver.middleware import FAVICON
from taskhook.receiver.routes import JSON, Api, Op
from taskhook.receiver.v1 import (
    account_api,
    batches_api,
    callbacks_api,
    events_api,
    files_api,
    projects_api,
    quality_api,
    studio_api,
    tasks_api,
    teams_api,
)
from taskhook.receiver.v2 import batches_api as v2_batches
from taskhook.receiver.v2 import datasets_api, deliveries_api
from taskhook.receiver.v2 import tasks_api as v2_tasks
from taskhook.web import is_page

REF = "#/components/schemas/{model}"
TASK_CREATE = "/v1/task/{type}"  # documented once per task type

api = Api("operations", public=True)
routes = api.routes
for path, handler, summary, reply, errors in (
    ("/healthz", ops.healthz, "Liveness", Health, ()),
    (
        "/readyz",
        ops.readyz,
        "Readiness: the database answers and the dispatcher loop turns (else 503)",
        Ready,
        (503,),
    ),
    ("/metrics", ops.prometheus, "Prometheus metrics", {"type": "string"}, ()),
):  # served by core/ops.py's table, which the dispatcher's ops server shares
    media = "text/plain" if path == "/metrics" else JSON
    api.get(path, summary, reply, errors=errors, shed=False, media=media, serve=False)(handler)
OP_IDS = {"prometheus": "metrics", "openapi_json": "openapi"}
APIS = (
    tasks_api.api,
    callbacks_api.api,
    batches_api.api,
    projects_api.api,
    quality_api.api,
    files_api.api,
    teams_api.api,
    studio_api.api,
    account_api.api,
    events_api.api,
    api,
    v2_tasks.api,
    v2_batches.api,
    deliveries_api.api,
    datasets_api.api,
)
TAGS = {
    "tasks": "Create, read, list and change tasks.",
    "batches": "Batches of tasks.",
    "projects": "Projects and their params.",
    "files": "Uploaded and imported files, usable as task attachments.",
    "teams": "The account's teammates and their roles.",
    "studio": "How a team's own labelers are given work.",
    "callbacks": "Callback deliveries of a task.",
    "account": "The calling account.",
    "events": "Signed workforce events (no API key).",
    "v2": "Scale's v2 API: tasks, batches, projects and deliveries.",
    "operations": "Health, readiness, metrics, this document (no API key).",
}
ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed or invalid input, or a change the task's state forbids."),
    401: ("Unauthorized", "No valid API key (or, for events, no valid signature)."),
    403: ("Forbidden", "A test key may not change the account (live key needed)."),
    404: ("NotFound", "No such object for this account and world."),
    409: ("Conflict", "A unique_id, name or Idempotency-Key is already used."),
    413: ("PayloadTooLarge", "The body is larger than TASKHOOK_MAX_BODY_BYTES."),
    429: ("TooManyRequests", "The same Idempotency-Key is still being processed; retry."),
    503: (
        "ServiceUnavailable",
        "The database is unavailable, or the receiver is over capacity; retry after Retry-After.",
    ),
}
HEADERS = {
    "X-Request-Id": {
        "description": "The request's id (the client's `X-Request-Id`, else generated); on "
        "every log line.",
        "schema": {"type": "string"},
        "required": True,
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "required": True,
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the saved reply to an earlier request with the "
        "same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
REQUEST_ID_PARAM = {
    "name": "X-Request-Id",
    "in": "header",
    "description": "Echoed back and bound to every log line of the request (first 64 "
    "characters); generated when absent.",
    "schema": {"type": "string"},
}


@api.get("/openapi.json", "This document", dict[str, Any])
async def openapi_json(_request: web.Request) -> web.Response:
    """No API key needed: the document describes the API, not an account."""
    return web.Response(text=_document_text(), content_type=JSON)


def is_api_route(path: str) -> bool:
    """False for the Tasks tab's HTML pages (taskhook/web): routes of this app, but not API
    (a sign-in session, not a key; HTML, not JSON), so this document leaves them out, as
    it does the browsers' /favicon.ico."""
    return not is_page(path) and path != FAVICON


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


class _Schemas:
    """Every body and reply type of the operations as component schemas (models by name,
    other types inline), generated together so that shared models are one component."""

    def __init__(self, operations: list[Op]) -> None:
        types = [Error, *(t for op in operations for t in (op.reply, _body_type(op)))]
        self.types = [t for t in dict.fromkeys(map(_Key, types)) if not isinstance(t.tp, dict)]
        inputs: list[tuple[_Key, JsonSchemaMode, TypeAdapter[Any]]] = [
            (key, "validation", TypeAdapter(key.tp)) for key in self.types
        ]
        roots, top = TypeAdapter.json_schemas(inputs, ref_template=REF)
        self.roots = {key: schema for (key, _), schema in roots.items()}
        self.components: dict[str, Any] = dict(top.get("$defs", {}))

    def of(self, tp: Any) -> dict[str, Any]:
        return tp if isinstance(tp, dict) else self.roots[_Key(tp)]


class _Key:
    """A type as a dictionary key (some annotated types are not hashable)."""

    def __init__(self, tp: Any) -> None:
        self.tp = tp

    def __hash__(self) -> int:
        return hash(repr(self.tp))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and repr(other.tp) == repr(self.tp)


def _body_type(op: Op) -> Any:
    return op.body.schema if op.body is not None else {}


def _parameters(op: Op) -> list[dict[str, Any]]:
    params = []
    for name in _path_names(op.path):
        given = op.params.get(name, "")
        schema = {"type": "string", "minLength": 1}
        if isinstance(given, dict):
            schema = {"type": "string", **{k: v for k, v in given.items() if k != "description"}}
            given = given["description"]
        params.append(
            {"name": name, "in": "path", "required": True, "description": given, "schema": schema}
        )
    if op.query is not None:
        props = op.query.model_json_schema(ref_template=REF)["properties"]
        for name, field in op.query.model_fields.items():
            schema = {k: v for k, v in props[name].items() if k not in ("title", "description")}
            if schema.get("default", 0) is None:
                del schema["default"]
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "description": field.description or "",
                "schema": schema,
            }
            if field.is_required():
                param["required"] = True
            if schema.get("type") == "array":
                param.update(style="form", explode=True)
            params.append(param)
    if op.idempotent:
        params.append(IDEMPOTENCY_KEY)
    return [*params, *op.headers, {"$ref": "#/components/parameters/X-Request-Id"}]


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation(op: Op, schemas: _Schemas, body: dict[str, Any] | None = None) -> dict[str, Any]:
    codes = {400, *op.errors}  # a NUL in the path or query string is a 400 anywhere
    if not op.public:
        codes |= {401, 503}  # the API key is looked up in the database
    if op.shed:
        codes |= {503}  # past its capacity the receiver sheds load (receiver/shedding.py)
    if op.body is not None:
        codes |= {413}
    if op.idempotent:
        codes |= {409, 429}
    if op.redirect is not None:
        ok: dict[str, Any] = {"302": {"description": op.redirect}}
    else:
        headers = _header_refs("X-Request-Id", *(["Idempotent-Replayed"] * op.idempotent))
        content = {op.media: {"schema": schemas.of(op.reply)}}
        ok = {"200": {"description": "Success.", "headers": headers, "content": content}}
    for code in sorted(codes):
        ok[str(code)] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    doc: dict[str, Any] = {
        "operationId": OP_IDS.get(op.op_id, op.op_id),
        "tags": [op.tag],
        "summary": op.summary,
    }
    if op.description:
        doc["description"] = op.description
    doc["parameters"] = _parameters(op)
    if op.body is not None:
        media = {op.body.media: {"schema": body or schemas.of(op.body.schema)}}
        doc["requestBody"] = {
            "description": op.body.description,
            "required": op.body.required,
            "content": media,
        }
    doc["responses"] = ok
    if op.public:
        doc["security"] = []
    return doc


def _paths(schemas: _Schemas, operations: list[Op]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op in operations:
        if op.path == TASK_CREATE:
            base = schemas.components["TaskCreate"]
            for task_type in sorted(TASK_TYPES):
                name = f"{task_type}TaskCreate"
                schemas.components[name] = create_schema(base, task_type)
                each = _operation(op, schemas, _ref(name))
                each["operationId"] = f"create_{task_type}_task"
                each["summary"] = f"Create a {task_type} task"
                each["parameters"] = each["parameters"][1:]  # the type is in the path
                paths[f"/v1/task/{task_type}"] = {"post": each}
        else:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return paths


def _error_response(status: int, description: str) -> dict[str, Any]:
    headers = _header_refs("X-Request-Id", *(["Retry-After"] * (status in (429, 503))))
    schema = {"allOf": [_ref("Error")], "properties": {"status_code": {"const": status}}}
    return {"description": description, "headers": headers, "content": {JSON: {"schema": schema}}}


@functools.cache
def build_document() -> dict[str, Any]:
    """The whole document (built once; callers must not change it)."""
    operations = [op for each in APIS for op in each.ops]
    schemas = _Schemas(operations)
    paths = _paths(schemas, operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskhook",
            "version": __version__,
            "description": (
                "A self-hostable, Scale-compatible task API (v1) with reliable task "
                "callbacks. Every success is a 200; every error is "
                '`{"status_code": N, "error": "..."}`. Test keys (`test_...`) and live keys '
                "(`live_...`) see separate worlds. Every reply carries `X-Request-Id`."
            ),
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": {
                name: _error_response(code, text) for code, (name, text) in ERRORS.items()
            },
            "parameters": {"X-Request-Id": REQUEST_ID_PARAM},
            "headers": HEADERS,
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The API key as the user name and an empty password "
                    "(what Scale's SDK sends).",
                },
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <API key>`.",
                },
            },
        },
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
    }


@functools.cache
def _document_text() -> str:
    return json.dumps(build_document(), separators=(",", ":"), ensure_ascii=False)
