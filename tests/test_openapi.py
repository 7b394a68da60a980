"""The OpenAPI document (GET /openapi.json): it matches the router, it is valid OpenAPI 3.1,
and every operation holds up under schemathesis against the live receiver.

The fuzz runs each documented operation with a fixed number of examples (positive and
negative data, derandomized) and checks every reply: no 5xx, a documented status code,
a documented content type, a body and headers that match the documented schema. The
ingest endpoint is fuzzed like the others: a requests auth hook signs the exact bytes
sent with the ingest secret (Standard Webhooks), and leaves some requests unsigned so
the 401 path is fuzzed too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import json
import os
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import asyncpg
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_openapi
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from standardwebhooks.webhooks import Webhook

from taskhook.core.replies import Health
from taskhook.core.settings import Settings
from taskhook.core.tasktypes import TASK_TYPES
from taskhook.receiver import routes
from taskhook.receiver.app import create_app
from taskhook.receiver.keys import VALIDATE_REPLIES
from taskhook.receiver.openapi import APIS, build_document, is_api_route
from tests.conftest import INGEST_SECRET, Api, snapshot
from tests.test_bad_input import assert_error, raw_http

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
TASK_CREATE_ROUTE = "/v1/task/{type}"  # documented once per task type
# Bounded: a fixed number of examples per operation (about 40 s for all of them). The
# variable raises it for a deeper local run, e.g. TASKHOOK_FUZZ_EXAMPLES=300.
EXAMPLES_PER_OPERATION = int(os.environ.get("TASKHOOK_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def documented_operations() -> list[tuple[str, str]]:
    doc = build_document()
    return [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    ]


def _path_params(path: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", path))


# --- the document itself ---------------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    doc = build_document()
    assert doc["openapi"].startswith("3.1.")
    validate_openapi(copy.deepcopy(doc))
    # ...and schemathesis can load every operation of it.
    schema = schemathesis.openapi.from_dict(copy.deepcopy(doc))
    results = list(schema.get_all_operations())
    assert len(results) == len(documented_operations())
    for result in results:
        result.ok()


def test_document_and_router_agree(settings: Settings) -> None:
    """Every route (HEAD duplicates aside) is documented with its path parameters, and every
    documented operation is a route."""
    app = create_app(settings, dsn="postgresql://unused", ingest_secret=INGEST_SECRET)
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and is_api_route(route.resource.canonical)  # the Tasks tab's HTML pages are not API
    }
    doc = build_document()
    documented: set[tuple[str, str]] = set()
    for method, path in documented_operations():
        item = doc["paths"][path]
        params = [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
        in_path = {p["name"] for p in params if p.get("in") == "path"}
        assert in_path == _path_params(path), f"{method} {path}: path parameters {in_path}"
        task_type = path.removeprefix("/v1/task/")
        if method == "POST" and task_type in TASK_TYPES:
            path = TASK_CREATE_ROUTE
        documented.add((method, path))
    assert routed - documented == set(), "routes missing from the document"
    assert documented - routed == set(), "documented operations with no route"
    creates = {p for m, p in documented_operations() if p.startswith("/v1/task/") and m == "POST"}
    assert {f"/v1/task/{t}" for t in TASK_TYPES} <= creates


def test_every_operation_documents_its_errors() -> None:
    """Each 4xx/5xx reply is the {status_code, error} shape; each API-key operation can 401."""
    doc = build_document()
    for method, path in documented_operations():
        op = doc["paths"][path][method.lower()]
        codes = set(op["responses"])
        assert codes & {"200", "302"} and "400" in codes, f"{method} {path}"  # 302: a redirect
        assert "500" not in codes and "default" not in codes, f"{method} {path}"
        if op.get("security", doc["security"]):
            assert {"401", "503"} <= codes, f"{method} {path}"
        for code in codes - {"200", "302"}:
            ref = op["responses"][code]["$ref"]
            response = doc["components"]["responses"][ref.rsplit("/", 1)[1]]
            schema = response["content"]["application/json"]["schema"]
            assert schema["allOf"] == [{"$ref": "#/components/schemas/Error"}]
            assert schema["properties"]["status_code"] == {"const": int(code)}
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["status_code", "error"]
    assert error["additionalProperties"] is False
    events = doc["paths"]["/v1/events"]["post"]
    assert events["security"] == []
    headers = {p["name"] for p in events["parameters"] if p.get("required")}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    schemes = doc["components"]["securitySchemes"]
    assert {(s["type"], s["scheme"]) for s in schemes.values()} == {
        ("http", "basic"),
        ("http", "bearer"),
    }


def test_every_operation_is_declared_once() -> None:
    """The document comes from the declarations: one per (method, path), each with a reply."""
    declared = [(op.method, op.path) for each in APIS for op in each.ops]
    assert len(declared) == len(set(declared))
    for each in APIS:
        for op in each.ops:
            assert op.reply is not None or op.redirect, f"{op.method} {op.path}"


@pytest.mark.parametrize("checked", [True, False])
async def test_replies_are_checked_against_their_type_when_asked(
    aiohttp_client: Any, checked: bool
) -> None:
    """The tests' app checks every 200 reply against its declared type; production not."""
    api = routes.Api("t", public=True)

    @api.get("/t", "t", Health)
    async def off_type(_request: web.Request) -> dict[str, str]:
        return {"status": "not ok"}

    app = web.Application()
    app[VALIDATE_REPLIES] = checked
    app.router.add_routes(api.routes)
    client = await aiohttp_client(app)
    async with client.get("/t") as resp:
        assert resp.status == (500 if checked else 200)


# --- what the fuzz found (kept as plain regression tests) ------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [b"Basic \xff", b"Basic \xc3\xa9", b"Basic " + base64.b64encode(b"\xff\xfe:"), b"Bearer \xff"],
)
async def test_authorization_that_is_not_ascii_is_401(base_url: str, authorization: bytes) -> None:
    """A Basic credential that is not ASCII base64 was a 500; it is no key, so a 401."""
    status, body = await raw_http(
        base_url, b"GET /v1/account HTTP/1.1\r\nAuthorization: " + authorization + b"\r\n"
    )
    assert_error(status, body, 401, "API key")


EDGES = [
    "0001-01-01T00:00:00Z",  # datetime.min: stored as -infinity, then unreadable (500s)
    "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC: could not be stored (500)
    "9999-12-31T23:59:59.999999Z",  # datetime.max: +infinity
    "9999-12-31T23:59:59-23:59",  # after datetime.max in UTC
    "1969-12-31T23:59:59Z",
]


@pytest.mark.parametrize("occurred_at", EDGES)
@pytest.mark.parametrize("event_type", ["completed", "fixed"])
async def test_occurred_at_the_database_cannot_hold_is_400(
    live: Api, pool: asyncpg.Pool, occurred_at: str, event_type: str
) -> None:
    """Such an event was applied (or a 500) and left its task unreadable; now it is a 400
    naming the event and field, and nothing is applied."""
    await live.project()
    task = await live.task()
    if event_type == "fixed":
        await _event(live, task["task_id"], "task.completed", response={"category": "x"})
    before = await snapshot(pool)
    body = {
        "event_id": "e-edge",
        "type": f"task.{event_type}",
        "task_id": task["task_id"],
        "occurred_at": occurred_at,
        "response": {"category": "y"},
    }
    status, reply = await _signed(live, json.dumps([body]))
    assert_error(status, reply, 400, "event 0", "'e-edge'", "occurred_at", "out of range")
    assert await snapshot(pool) == before
    status, reply = await live.call("GET", f"/v1/task/{task['task_id']}")
    assert status == 200, reply


async def test_served_without_a_key(base_url: str, http: aiohttp.ClientSession) -> None:
    async with http.get(base_url + "/openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == json.loads(json.dumps(build_document()))


# --- fuzzing against the live receiver ---------------------------------------------------------

SINK = "http://127.0.0.1:9/callback"  # no dispatcher runs here: deliveries just queue
CALLBACK_URLS = (SINK, "https://example.com/cb")


class SignedIngest(requests.auth.AuthBase):
    """Signs the exact body requests sends, as the workforce tooling would."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        try:
            text = body.decode() if isinstance(body, bytes) else body
        except UnicodeDecodeError:  # Standard Webhooks signs text: such a body stays unsigned
            return request
        msg_id = "msg_" + secrets.token_hex(8)
        now = datetime.now(UTC)
        request.headers["webhook-id"] = msg_id
        request.headers["webhook-timestamp"] = str(int(now.timestamp()))
        request.headers["webhook-signature"] = Webhook(INGEST_SECRET).sign(msg_id, now, text)
        return request


@dataclass(frozen=True)
class Known:
    """Real names and ids, swapped into generated requests so they reach past the 404s: per
    API key, its world's ids by field name (both worlds share the names)."""

    worlds: dict[str, dict[str, tuple[str, ...]]]
    names: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "project": ("proj", "rapid"),
            "project_name": ("proj", "rapid"),
            "batch": ("b1",),
            "batch_name": ("b1",),
            "delivery_name": ("d1",),
            "callback_url": CALLBACK_URLS,
            "callback": CALLBACK_URLS,
            "default_callback_url": CALLBACK_URLS,
        }
    )

    def anywhere(self, name: str) -> tuple[str, ...]:
        return tuple(v for world in self.worlds.values() for v in world.get(name, ()))


async def _signed(api: Api, body: str) -> tuple[int, Any]:
    msg_id, now = "msg_" + secrets.token_hex(6), datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(INGEST_SECRET).sign(msg_id, now, body),
        "Content-Type": "application/json",
    }
    return await api.call("POST", "/v1/events", data=body, headers=headers)


async def _event(api: Api, task_id: str, type_: str, **fields: Any) -> None:
    event = {"event_id": secrets.token_hex(6), "type": type_, "task_id": task_id, **fields}
    status, reply = await _signed(api, json.dumps(event))
    assert status == 200 and reply["results"][0]["status"] == "applied", reply


async def _v2_id(api: Api, path: str, **query: str) -> tuple[str, ...]:
    status, body = await api.call("GET", path, params=query)
    assert status == 200, body
    return (body["id"],)


async def seed(live: Api, test_api: Api) -> Known:
    """Both worlds: projects 'proj' and 'rapid', batch 'b1' and a task in it; live tasks in
    every state (test-key tasks are completed at once) and a v2 delivery 'd1'."""
    worlds: dict[str, dict[str, tuple[str, ...]]] = {}
    for api in (live, test_api):
        await api.project("proj")
        status, body = await api.call(
            "POST", "/v1/projects", json={"name": "rapid", "type": "imageannotation", "rapid": True}
        )
        assert status == 200, body
        status, body = await api.call("POST", "/v1/batches", json={"project": "proj", "name": "b1"})
        assert status == 200, body
        task = await api.task(unique_id="u1", tags=["a", "b"], batch="b1", callback_url=SINK)
        worlds[api.key] = {
            "task_id": (task["task_id"],),
            "project_id": await _v2_id(api, "/v2/project", project_name="proj"),
            "batch_id": await _v2_id(api, "/v2/batch", batch_name="b1"),
        }
    pending, started, completed, canceled, errored, delivered, chat = [
        (await live.task(callback_url=SINK))["task_id"] for _ in "1234567"
    ]
    await _event(live, started, "task.started")
    for task_id in (completed, delivered):
        await _event(live, task_id, "task.completed", response={"category": "x"})
    await _event(live, chat, "task.completed", threads=THREADS)
    for task_id in (delivered, chat):
        await _event(live, task_id, "task.delivered", delivery_name="d1")
    await _event(live, errored, "task.errored", error="bad attachment")
    status, body = await live.call("POST", f"/v1/task/{canceled}/cancel")
    assert status == 200, body
    world = worlds[live.key]
    world["task_id"] += (pending, started, completed, canceled, errored, delivered, chat)
    status, body = await live.call("GET", "/v2/deliveries", params={"project_name": "proj"})
    assert status == 200 and body["deliveries"], body
    world["delivery_id"] = tuple(d["id"] for d in body["deliveries"])
    status, body = await live.call("GET", "/v2/delivery/tasks", params={"project_name": "proj"})
    assert status == 200, body
    world["schema_id"] = tuple({d["response_schema_id"] for d in body["docs"]} - {None})
    status, body = await live.call("GET", "/v2/task", params={"task_id": chat})
    assert status == 200, body
    world["annotation_id"] = (body["threads"][0]["turns"][0]["annotations"][0]["id"],)
    return Known(worlds)


# A v2 result with one annotation (its id is assigned at ingest).
THREADS = [
    {
        "turns": [
            {
                "messages": [{"role": "user", "content": {"text": "hi"}, "source_id": "s1"}],
                "annotations": [{"key": "q", "type": "text", "value": "ok"}],
            }
        ]
    }
]


# Any instant, in zones far from UTC: the edges of the datetime range are the hard part.
ZONES = [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=23, minutes=59))]
OCCURRED_AT = st.one_of(
    st.datetimes(timezones=st.sampled_from(ZONES)),
    st.sampled_from(
        [edge.replace(tzinfo=zone) for edge in (datetime.min, datetime.max) for zone in ZONES]
    ),
)
# Characters an HTTP header value may hold (VCHAR, space, obs-text): aiohttp's parser refuses
# others (DEL, controls) with its own plain-text 400 before the app sees the request.
HEADER_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
# Authorization headers that are not a valid key: each must be a 401, never a 500.
BAD_AUTHORIZATION = st.one_of(
    # requests will not send a value that starts with whitespace (\xa0 and \x85 included)
    st.text(HEADER_CHARS, max_size=40).filter(lambda v: not v[:1].isspace()),
    st.builds(
        lambda scheme, value: f"{scheme} {value}",
        st.sampled_from(["Basic", "Bearer", "basic", "Digest"]),
        st.text(HEADER_CHARS, max_size=40),
    ),
)


def _authorization(data: st.DataObject, key: str) -> str:
    how = data.draw(st.sampled_from(["basic", "bearer", "bad"]), label="authorization")
    if how == "basic":
        return "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if how == "bearer":
        return f"Bearer {key}"
    return data.draw(BAD_AUTHORIZATION, label="bad authorization")


@functools.cache
def _documented(path: str, method: str) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameter names and the body property names of an operation."""
    doc = build_document()
    op = doc["paths"][path][method.lower()]
    query = frozenset(p["name"] for p in op.get("parameters", []) if p.get("in") == "query")
    body: frozenset[str] = frozenset()
    ref = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = ref.get("schema", {}).get("$ref", "")
    if ref:
        body = frozenset(doc["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {}))
    return query, body


NAMED_BY = ("project_id", "project_name", "batch_id", "batch_name")


def _name_something(container: dict[str, Any], documented: frozenset[str]) -> None:
    """v2 names its objects by id or name, all optional: name one when none is."""
    if "delivery_name" in documented and not {"delivery_id", "delivery_name"} & set(container):
        container["delivery_name"] = "d1"
    if set(NAMED_BY) & set(container):
        return
    for name in ("project_name", "batch_name"):
        if name in documented:
            container[name] = "proj" if name == "project_name" else "b1"
            return


@dataclass(frozen=True)
class _Swap:
    """Replaces generated names and ids with real ones of one world (or of any)."""

    data: st.DataObject
    known: Known
    key: str
    own: bool
    path: str

    def choices(self, name: str, where: str) -> tuple[str, ...]:
        if name == "name" and where == "path":
            return self.known.names["batch" if self.path.startswith("/v1/batches") else "project"]
        if name in self.known.names:
            return self.known.names[name]
        if self.own:
            return self.known.worlds[self.key].get(name, ())
        return self.known.anywhere(name)

    def __call__(self, container: Any, where: str) -> None:
        if not isinstance(container, dict):
            return
        for name, value in list(container.items()):
            choices = self.choices(name, where)
            if choices and not isinstance(value, list | dict):
                container[name] = self.data.draw(st.sampled_from(choices), label=name)


def _steer(case: Any, data: st.DataObject, known: Known, key: str) -> None:
    """Swap real names and ids into a generated case (the caller's world, mostly)."""
    path = case.operation.path
    own = data.draw(st.integers(0, 4), label="world") < 4 and path != "/v1/events"
    swap = _Swap(data, known, key, own, path)
    query_names, body_names = _documented(path, case.operation.method)
    swap(case.path_parameters, "path")
    if path.startswith("/v2") and query_names & set(NAMED_BY):
        if case.query is None:
            case.query = {}
        _name_something(case.query, query_names)
    swap(case.query, "query")
    body = case.body
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict):
            continue
        if path.startswith("/v2"):
            _name_something(item, body_names)
        if "project" in item and "batch" in item:
            item.pop("batch")
        swap(item, "body")
        if path == "/v1/events" and data.draw(st.integers(0, 3), label="occurred_at") == 0:
            item["occurred_at"] = data.draw(OCCURRED_AT, label="occurred_at").isoformat()


def fuzz(method: str, path: str, base_url: str, known: Known) -> Counter[int]:
    """Run the bounded, derandomized fuzz of one operation (blocking); return how many
    replies of each status it got."""
    schema = schemathesis.openapi.from_dict(copy.deepcopy(build_document()))
    operation = schema[path][method]
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    with contextlib.suppress(Exception):  # when nothing in the operation can be invalid
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    session = requests.Session()
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(st.one_of(strategies), label="case")
        key = data.draw(st.sampled_from(sorted(known.worlds)), label="key")
        if data.draw(st.integers(0, 3), label="steer") < 3:
            _steer(case, data, known, key)
        headers = {"Authorization": _authorization(data, key)}
        extra: dict[str, Any] = {}
        if path == "/v1/events" and data.draw(st.integers(0, 9), label="sign") < 9:
            extra["auth"] = SignedIngest()
        response = case.call(base_url=base_url, session=session, headers=headers, **extra)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    finally:
        session.close()
    return statuses


@pytest.mark.parametrize(
    ("method", "path"), [pytest.param(m, p, id=f"{m} {p}") for m, p in documented_operations()]
)
async def test_fuzz_operation(
    method: str, path: str, base_url: str, live: Api, test_api: Api
) -> None:
    known = await seed(live, test_api)
    started = time.monotonic()
    statuses = await asyncio.to_thread(fuzz, method, path, base_url, known)
    elapsed = time.monotonic() - started
    print(f"{method} {path}: {dict(sorted(statuses.items()))} in {elapsed:.2f}s")
    assert sum(statuses.values()) >= min(EXAMPLES_PER_OPERATION, 10), statuses
