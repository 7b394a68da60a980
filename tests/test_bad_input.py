"""Bad input: every refusal is a 4xx `{"status_code": N, "error": "<what, where>"}`,
never a 500 or a stack trace, and a refused request writes nothing."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from taskhook.core.accounts import NewAccount
from taskhook.core.settings import Settings
from tests.conftest import Api, snapshot

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

TASK_BODY = {"project": "proj", "attachment": "a", "categories": ["x", "y"]}
CREATE = "/v1/task/categorization"


# --- helpers ------------------------------------------------------------------------------


def assert_error(status: int, body: Any, expected: int, *words: str) -> str:
    """The reply is exactly {"status_code": expected, "error": msg} and msg names `words`."""
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"status_code", "error"}, body
    assert body["status_code"] == status
    message = body["error"]
    assert isinstance(message, str) and message, body
    assert "Traceback" not in message
    for word in words:
        assert word in message, f"{word!r} not named in {message!r}"
    return message


async def task_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM tasks"))


async def send(api: Api, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    """Bytes go out as they are (large ones streamed); anything else as JSON."""
    if isinstance(body, bytes):
        data = io.BytesIO(body) if len(body) > 1 << 20 else body
        return await api.call(method, path, data=data, **kw)
    return await api.call(method, path, json=body, **kw)


async def raw_http(base_url: str, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """One HTTP/1.1 request written byte for byte (for headers aiohttp would not send)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        head + b"Host: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    reply = await reader.read()
    writer.close()
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


@dataclass(frozen=True)
class World:
    """Objects of the account in one world: project 'proj', batch 'b1', and one task."""

    api: Api
    task: dict[str, Any]

    @property
    def task_id(self) -> str:
        return str(self.task["task_id"])


async def build_world(api: Api) -> World:
    await api.project("proj")
    await api.project("other")
    status, body = await api.call("POST", "/v1/batches", json={"project": "proj", "name": "b1"})
    assert status == 200, body
    task = await api.task(unique_id="uid-1", tags=["t1", "t2", "t3"], metadata={"m": 1}, batch="b1")
    return World(api, task)


@pytest.fixture
async def live_world(live: Api) -> World:
    """A pending task (live keys leave tasks pending)."""
    return await build_world(live)


@pytest.fixture
async def sandbox_world(test_api: Api) -> World:
    """A completed task (test keys complete tasks at once), so every endpoint can apply."""
    return await build_world(test_api)


# --- one defect, every JSON endpoint -----------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A JSON-body endpoint with a valid body whose "@" string the defect replaces."""

    method: str
    path: str
    body: str
    where: str  # how the error names the "@" value

    def url(self, world: World) -> str:
        return self.path.format(task=world.task_id)


JSON_ENDPOINTS = [
    Endpoint(
        "POST", CREATE, '{"project":"proj","attachment":"@","categories":["x"]}', "body.attachment"
    ),
    Endpoint("POST", "/v1/task/{task}/audit", '{"accepted":true,"comments":"@"}', "body.comments"),
    Endpoint("POST", "/v1/task/{task}/unique_id", '{"unique_id":"@"}', "body.unique_id"),
    Endpoint("POST", "/v1/task/{task}/setMetadata", '{"note":"@"}', "body.note"),
    Endpoint("POST", "/v1/task/{task}/tags", '["@"]', "body[0]"),
    Endpoint("PUT", "/v1/task/{task}/tags", '["@"]', "body[0]"),
    Endpoint("DELETE", "/v1/task/{task}/tags", '["@"]', "body[0]"),
    Endpoint("POST", "/v1/batches", '{"project":"proj","name":"@"}', "body.name"),
    Endpoint("POST", "/v1/batches/b1/setMetadata", '{"note":"@"}', "body.note"),
    Endpoint("POST", "/v1/projects", '{"name":"@","type":"categorization"}', "body.name"),
    Endpoint("POST", "/v1/projects/proj/setParams", '{"instruction":"@"}', "body.instruction"),
]

# defect id -> (what replaces "@" in the raw JSON text, words the error must contain;
# "{where}" stands for the endpoint's location of the value)
DEFECTS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "malformed-json": (b'"@', ("not valid JSON",)),
    "nul-character": (b'"a\\u0000b"', ("{where}", "NUL")),
    "lone-surrogate": (b'"\\ud800"', ("{where}", "Unicode")),
    "number-1e400": (b"1e400", ("{where}", "out of range")),
    "number-minus-1e400": (b"-1e400", ("{where}", "out of range")),
    "nan": (b"NaN", ("NaN", "not valid JSON")),
    "invalid-utf8": (b'"\xff\xfe"', ("UTF-8",)),
    "nested-10000": (b"[" * 10_000 + b"]" * 10_000, ("nested too deeply",)),
    "nested-100": (b"[" * 100 + b"]" * 100, ("{where}", "nested deeper")),
}


def with_defect(endpoint: Endpoint, defect: bytes) -> bytes:
    return endpoint.body.encode().replace(b'"@"', defect)


def endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=endpoint_id)
async def test_table_bodies_are_valid(sandbox_world: World, endpoint: Endpoint) -> None:
    """Control: each table body is accepted as is, so a refusal below is the defect's doing."""
    body = endpoint.body.replace("@", "fine")
    status, reply = await send(
        sandbox_world.api, endpoint.method, endpoint.url(sandbox_world), body.encode()
    )
    assert status == 200, reply


@pytest.mark.parametrize("defect", DEFECTS)
@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=endpoint_id)
async def test_body_defect_is_400_and_writes_nothing(
    sandbox_world: World, pool: asyncpg.Pool, endpoint: Endpoint, defect: str
) -> None:
    """A body PostgreSQL or JSON cannot take is a 400 naming where, and changes no row."""
    replacement, words = DEFECTS[defect]
    before = await snapshot(pool)
    status, body = await send(
        sandbox_world.api,
        endpoint.method,
        endpoint.url(sandbox_world),
        with_defect(endpoint, replacement),
    )
    assert_error(status, body, 400, *(w.format(where=endpoint.where) for w in words))
    assert await snapshot(pool) == before


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=endpoint_id)
async def test_oversized_body_is_413_and_writes_nothing(
    sandbox_world: World, pool: asyncpg.Pool, settings: Settings, endpoint: Endpoint
) -> None:
    """A body over client_max_size (Settings.max_body_bytes) is a JSON 413, not a write."""
    big = b'"' + b"a" * (settings.max_body_bytes + 1) + b'"'
    before = await snapshot(pool)
    status, body = await send(
        sandbox_world.api, endpoint.method, endpoint.url(sandbox_world), with_defect(endpoint, big)
    )
    assert_error(status, body, 413, "body", "too large")
    assert await snapshot(pool) == before


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=endpoint_id)
@pytest.mark.parametrize("raw", [b"{", b"nul", b"{'a': 1}", b'{"a": 1} x', b"\x00"])
async def test_malformed_body_is_400(
    sandbox_world: World, pool: asyncpg.Pool, endpoint: Endpoint, raw: bytes
) -> None:
    """Malformed JSON is a 400 that says the body is the problem."""
    before = await snapshot(pool)
    status, body = await send(sandbox_world.api, endpoint.method, endpoint.url(sandbox_world), raw)
    assert_error(status, body, 400, "body", "JSON")
    assert await snapshot(pool) == before


# (The SDK sends {} and [] as no body, so setMetadata and tags take an empty body as those.)
BODY_REQUIRED = [
    e
    for e in JSON_ENDPOINTS
    if e.path
    in (CREATE, "/v1/task/{task}/audit", "/v1/task/{task}/unique_id", "/v1/batches", "/v1/projects")
]


@pytest.mark.parametrize("endpoint", BODY_REQUIRED, ids=endpoint_id)
@pytest.mark.parametrize("raw", [b"", b"  \r\n"])
async def test_missing_body_is_400(
    sandbox_world: World, pool: asyncpg.Pool, endpoint: Endpoint, raw: bytes
) -> None:
    """Where a body is required, none at all is a 400 that says the body is missing."""
    before = await snapshot(pool)
    status, body = await send(sandbox_world.api, endpoint.method, endpoint.url(sandbox_world), raw)
    assert_error(status, body, 400, "body", "empty")
    assert await snapshot(pool) == before


# --- task create: wrong types and broken rules ------------------------------------------------


@dataclass(frozen=True)
class BadCreate:
    id: str
    body: Any  # bytes are sent raw, anything else as JSON
    words: tuple[str, ...]
    path: str = CREATE
    headers: dict[str, str] | None = None


def task(**fields: Any) -> dict[str, Any]:
    return {**TASK_BODY, **fields}


BAD_CREATES = [
    BadCreate("body-is-a-list", [task()], ("body", "object")),
    BadCreate("body-is-a-string", "task", ("body", "object")),
    BadCreate("body-is-a-number", 5, ("body", "object")),
    BadCreate("body-is-null", b"null", ("body", "object")),
    BadCreate("tags-as-string", task(tags="a,b"), ("tags", "list")),
    BadCreate("metadata-as-list", task(metadata=[1, 2]), ("metadata", "dictionary")),
    BadCreate("metadata-as-null", task(metadata=None), ("metadata",)),
    BadCreate("unique-id-as-number", task(unique_id=5), ("unique_id", "string")),
    BadCreate("unique-id-empty", task(unique_id=""), ("unique_id", "non-empty")),
    BadCreate("unique-id-too-long", task(unique_id="u" * 1001), ("unique_id", "longer")),
    BadCreate("instruction-as-number", task(instruction=5), ("instruction", "string")),
    BadCreate("project-as-number", {**task(), "project": 5}, ("project", "string")),
    BadCreate("priority-as-string", task(priority="high"), ("priority",)),
    BadCreate("priority-too-big", task(priority=10**30), ("priority",)),
    BadCreate(
        "clear-unique-id-as-yes",
        task(clear_unique_id_on_error="yes"),
        ("clear_unique_id_on_error", "boolean"),
    ),
    BadCreate("metadata-over-10kb", task(metadata={"k": "a" * 10_240}), ("metadata", "10 KB")),
    BadCreate("six-tags", task(tags=["a", "b", "c", "d", "e", "f"]), ("tags", "at most 5")),
    BadCreate("empty-tag", task(tags=["a", ""]), ("tags[1]", "non-empty")),
    BadCreate("blank-tag", task(tags=["   "]), ("tags[0]", "non-empty")),
    BadCreate("tag-not-a-string", task(tags=["a", 7]), ("tags[1]", "string")),
    BadCreate("unknown-task-type", task(), ("nosuchtype",), path="/v1/task/nosuchtype"),
    BadCreate("unknown-project", task(project="nope"), ("Project", "nope", "not found")),
    BadCreate("unknown-batch", task(batch="nobatch"), ("Batch", "nobatch", "not found")),
    BadCreate(
        "batch-of-another-project", task(project="other", batch="b1"), ("b1", "other", "proj")
    ),
    BadCreate("missing-required-param", {"project": "proj", "attachment": "a"}, ("categories",)),
    BadCreate("nul-in-instruction", task(instruction="a\u0000b"), ("body.instruction", "NUL")),
    BadCreate("nul-in-metadata-key", task(metadata={"k\u0000": 1}), ("body.metadata", "NUL")),
    BadCreate("lone-surrogate-unique-id", task(unique_id="\ud800"), ("body.unique_id", "Unicode")),
    BadCreate("lone-surrogate-tag", task(tags=["\udfff"]), ("body.tags[0]", "Unicode")),
    BadCreate(
        "huge-integer",
        b'{"project":"proj","attachment":"a","categories":["x"],"n":' + b"9" * 5000 + b"}",
        ("not valid JSON",),
    ),
    BadCreate(
        "deep-metadata",
        task(metadata=json.loads('{"a":' * 80 + "1" + "}" * 80)),
        ("body.metadata", "nested deeper"),
    ),
    BadCreate(
        "callback-url-ftp",
        task(callback_url="ftp://example.com/cb"),
        ("callback_url", "ftp://example.com/cb"),
    ),
    BadCreate("callback-url-not-a-url", task(callback_url="not a url"), ("callback_url",)),
    BadCreate("callback-url-no-host", task(callback_url="http:///cb"), ("callback_url",)),
    BadCreate("callback-url-as-number", task(callback_url=5), ("callback_url",)),
    BadCreate(
        "idempotency-key-too-long",
        task(),
        ("Idempotency-Key", "255"),
        headers={"Idempotency-Key": "k" * 256},
    ),
    BadCreate(
        "idempotency-key-empty", task(), ("Idempotency-Key",), headers={"Idempotency-Key": ""}
    ),
]


@pytest.mark.parametrize("case", BAD_CREATES, ids=lambda c: c.id)
async def test_bad_task_create_is_400_and_writes_nothing(
    live_world: World, pool: asyncpg.Pool, case: BadCreate
) -> None:
    """A task create with a wrong type or a broken rule is a 400 naming the field; no row."""
    count, before = await task_count(pool), await snapshot(pool)
    status, body = await send(live_world.api, "POST", case.path, case.body, headers=case.headers)
    assert_error(status, body, 400, *case.words)
    assert await task_count(pool) == count
    assert await snapshot(pool) == before


async def test_limits_are_inclusive(live_world: World) -> None:
    """Exactly 10 KB of metadata and 5 distinct tags (duplicates ignored) are accepted."""
    metadata = {"k": "a" * (10_240 - len('{"k":""}'))}
    tags = ["a", "b", "a", "c", "d", "e"]
    status, body = await live_world.api.call(
        "POST", CREATE, json=task(metadata=metadata, tags=tags)
    )
    assert status == 200, body
    assert body["tags"] == ["a", "b", "c", "d", "e"]
    status, body = await live_world.api.call(
        "POST", f"/v1/task/{body['task_id']}/setMetadata", json={**metadata, "k2": ""}
    )
    assert_error(status, body, 400, "body", "10 KB")


# --- changes to an existing task --------------------------------------------------------------


@dataclass(frozen=True)
class BadChange:
    id: str
    method: str
    path: str  # "{task}" is the world's task
    body: Any
    words: tuple[str, ...]
    params: dict[str, str] | None = None


BAD_CHANGES = [
    BadChange("audit-accepted-yes", "POST", "audit", {"accepted": "yes"}, ("accepted",)),
    BadChange("audit-accepted-1", "POST", "audit", {"accepted": 1}, ("accepted",)),
    BadChange("audit-accepted-missing", "POST", "audit", {"comments": "c"}, ("accepted",)),
    BadChange(
        "audit-comments-number", "POST", "audit", {"accepted": True, "comments": 5}, ("comments",)
    ),
    BadChange(
        "audit-unknown-field", "POST", "audit", {"accepted": True, "acepted": 1}, ("acepted",)
    ),
    BadChange("audit-body-list", "POST", "audit", [True], ("body", "object")),
    BadChange("unique-id-number", "POST", "unique_id", {"unique_id": 5}, ("unique_id",)),
    BadChange("unique-id-empty", "POST", "unique_id", {"unique_id": ""}, ("unique_id",)),
    BadChange("unique-id-missing", "POST", "unique_id", {}, ("unique_id",)),
    BadChange(
        "unique-id-too-long",
        "POST",
        "unique_id",
        {"unique_id": "u" * 1001},
        ("unique_id", "longer"),
    ),
    BadChange("metadata-list", "POST", "setMetadata", [1], ("body", "object")),
    BadChange("metadata-string", "POST", "setMetadata", "m", ("body", "object")),
    BadChange("metadata-over-10kb", "POST", "setMetadata", {"k": "a" * 10_240}, ("body", "10 KB")),
    BadChange("set-tags-string", "POST", "tags", "a", ("body", "array")),
    BadChange("set-tags-object", "POST", "tags", {"tags": ["a"]}, ("body", "array")),
    BadChange(
        "set-six-tags", "POST", "tags", ["a", "b", "c", "d", "e", "f"], ("body", "at most 5")
    ),
    BadChange("set-empty-tag", "POST", "tags", ["a", ""], ("body[1]", "non-empty")),
    BadChange("add-to-six-tags", "PUT", "tags", ["n1", "n2", "n3"], ("tags", "6 tags")),
    BadChange("add-six-tags", "PUT", "tags", ["a", "b", "c", "d", "e", "f"], ("at most 5",)),
    BadChange("add-empty-tag", "PUT", "tags", [""], ("body[0]", "non-empty")),
    BadChange("add-tag-number", "PUT", "tags", [1], ("body[0]", "string")),
    BadChange("delete-tags-string", "DELETE", "tags", "t1", ("body", "array")),
    BadChange("delete-tags-numbers", "DELETE", "tags", [1], ("body", "array")),
    BadChange(
        "cancel-bad-boolean",
        "POST",
        "cancel",
        None,
        ("clear_unique_id", "maybe"),
        params={"clear_unique_id": "maybe"},
    ),
]


@pytest.mark.parametrize("case", BAD_CHANGES, ids=lambda c: c.id)
async def test_bad_task_change_is_400_and_task_unchanged(
    sandbox_world: World, pool: asyncpg.Pool, case: BadChange
) -> None:
    """A refused change to a task is a 400 naming the field, and the task stays as it was."""
    before = await snapshot(pool)
    path = f"/v1/task/{sandbox_world.task_id}/{case.path}"
    status, body = await send(sandbox_world.api, case.method, path, case.body, params=case.params)
    assert_error(status, body, 400, *case.words)
    assert await snapshot(pool) == before


async def test_audit_of_pending_task_is_400(live_world: World, pool: asyncpg.Pool) -> None:
    """Only completed tasks can be audited: a pending one is a 400 naming the task."""
    before = await snapshot(pool)
    status, body = await live_world.api.call(
        "POST", f"/v1/task/{live_world.task_id}/audit", json={"accepted": True}
    )
    assert_error(status, body, 400, live_world.task_id, "pending")
    assert await snapshot(pool) == before


async def test_cancel_of_completed_task_is_400_never_409(
    sandbox_world: World, pool: asyncpg.Pool
) -> None:
    """Cancelling a completed task is a 400 (the SDK crashes on a 409 from cancel)."""
    assert sandbox_world.task["status"] == "completed"
    before = await snapshot(pool)
    for params in (None, {"clear_unique_id": "true"}):
        status, body = await sandbox_world.api.call(
            "POST", f"/v1/task/{sandbox_world.task_id}/cancel", params=params
        )
        assert_error(status, body, 400, sandbox_world.task_id, "completed")
    assert await snapshot(pool) == before


# --- batches and projects --------------------------------------------------------------------


BAD_OTHERS = [
    ("batch-name-number", "/v1/batches", {"project": "proj", "name": 5}, ("name",)),
    ("batch-name-missing", "/v1/batches", {"project": "proj"}, ("name",)),
    ("batch-unknown-project", "/v1/batches", {"project": "nope", "name": "b2"}, ("nope",)),
    (
        "batch-metadata-list",
        "/v1/batches",
        {"project": "proj", "name": "b2", "metadata": [1]},
        ("metadata",),
    ),
    (
        "batch-metadata-over-10kb",
        "/v1/batches",
        {"project": "proj", "name": "b2", "metadata": {"k": "a" * 10_240}},
        ("metadata", "10 KB"),
    ),
    (
        "batch-callback-ftp",
        "/v1/batches",
        {"project": "proj", "name": "b2", "callback": "ftp://x"},
        ("callback",),
    ),
    ("batch-body-list", "/v1/batches", [{"project": "proj", "name": "b2"}], ("body", "object")),
    ("batch-set-metadata-list", "/v1/batches/b1/setMetadata", [1], ("body", "object")),
    (
        "batch-set-metadata-over-10kb",
        "/v1/batches/b1/setMetadata",
        {"k": "a" * 10_240},
        ("body", "10 KB"),
    ),
    ("project-unknown-type", "/v1/projects", {"name": "p2", "type": "nosuchtype"}, ("nosuchtype",)),
    ("project-type-number", "/v1/projects", {"name": "p2", "type": 5}, ("type",)),
    ("project-name-missing", "/v1/projects", {"type": "categorization"}, ("name",)),
    (
        "project-params-list",
        "/v1/projects",
        {"name": "p2", "type": "categorization", "params": [1]},
        ("params",),
    ),
    (
        "project-rapid-yes",
        "/v1/projects",
        {"name": "p2", "type": "categorization", "rapid": "yes"},
        ("rapid",),
    ),
    ("set-params-list", "/v1/projects/proj/setParams", [1], ("body", "object")),
]


@pytest.mark.parametrize(
    ("path", "payload", "words"), [c[1:] for c in BAD_OTHERS], ids=[c[0] for c in BAD_OTHERS]
)
async def test_bad_batch_or_project_body_is_400(
    live_world: World, pool: asyncpg.Pool, path: str, payload: Any, words: tuple[str, ...]
) -> None:
    """Batch and project bodies of the wrong shape are a 400 naming the field; no row."""
    before = await snapshot(pool)
    status, body = await live_world.api.call("POST", path, json=payload)
    assert_error(status, body, 400, *words)
    assert await snapshot(pool) == before


# --- query strings and URL paths --------------------------------------------------------------


BAD_QUERIES: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    ("start-time-not-a-date", "/v1/tasks", {"start_time": "yesterday"}, ("start_time",)),
    ("end-time-bad-month", "/v1/tasks", {"end_time": "2024-13-01"}, ("end_time",)),
    (
        "completed-after-bad",
        "/v1/tasks",
        {"completed_after": "2024-01-01T25:00"},
        ("completed_after",),
    ),
    ("updated-before-bad", "/v1/tasks", {"updated_before": "soon"}, ("updated_before",)),
    (
        "start-time-before-year-1",
        "/v1/tasks",
        {"start_time": "0001-01-01T00:00:00+14:00"},
        ("start_time", "out of range"),
    ),
    (
        "end-time-after-year-9999",
        "/v1/tasks",
        {"end_time": "9999-12-31T23:59:59-14:00"},
        ("end_time", "out of range"),
    ),
    ("next-token-garbage", "/v1/tasks", {"next_token": "not-a-token"}, ("next_token",)),
    ("next-token-not-base64", "/v1/tasks", {"next_token": "é!"}, ("next_token",)),
    ("next-token-short", "/v1/tasks", {"next_token": "AAAA"}, ("next_token",)),
    ("limit-0", "/v1/tasks", {"limit": "0"}, ("limit", "1 to 100")),
    ("limit-101", "/v1/tasks", {"limit": "101"}, ("limit", "1 to 100")),
    ("limit-abc", "/v1/tasks", {"limit": "abc"}, ("limit", "abc")),
    ("limit-negative", "/v1/tasks", {"limit": "-1"}, ("limit",)),
    ("limit-superscript", "/v1/tasks", {"limit": "²"}, ("limit",)),
    ("status-unknown", "/v1/tasks", {"status": "done"}, ("status", "done")),
    ("status-comma-list", "/v1/tasks", {"status": "pending,bogus"}, ("status", "bogus")),
    (
        "review-status-unknown",
        "/v1/tasks",
        {"customer_review_status": "great"},
        ("customer_review_status", "great"),
    ),
    ("type-unknown", "/v1/tasks", {"type": "nosuchtype"}, ("type", "nosuchtype")),
    (
        "limited-response-maybe",
        "/v1/tasks",
        {"limited_response": "maybe"},
        ("limited_response", "maybe"),
    ),
    (
        "include-attachment-url-2",
        "/v1/tasks",
        {"include_attachment_url": "2"},
        ("include_attachment_url",),
    ),
    ("nul-in-project-filter", "/v1/tasks", {"project": "a\u0000b"}, ("project", "NUL")),
    ("nul-in-unique-id-filter", "/v1/tasks", {"unique_id": "\u0000"}, ("unique_id", "NUL")),
    ("nul-in-tags-filter", "/v1/tasks", {"tags": "\u0000"}, ("tags", "NUL")),
    ("nul-in-query-name", "/v1/tasks", {"x\u0000": "1"}, ("query", "NUL")),
    ("batches-status-unknown", "/v1/batches", {"status": "done"}, ("status", "done")),
    ("batches-offset-negative", "/v1/batches", {"offset": "-1"}, ("offset",)),
    ("batches-offset-superscript", "/v1/batches", {"offset": "²"}, ("offset",)),
    ("batches-offset-over-bigint", "/v1/batches", {"offset": "9" * 20}, ("offset",)),
    ("batches-offset-5000-digits", "/v1/batches", {"offset": "9" * 5000}, ("offset",)),
    ("batches-limit-0", "/v1/batches", {"limit": "0"}, ("limit",)),
    ("batches-start-time-bad", "/v1/batches", {"start_time": "x"}, ("start_time",)),
    (
        "batches-end-time-overflow",
        "/v1/batches",
        {"end_time": "9999-12-31T23:00:00-14:00"},
        ("end_time",),
    ),
    (
        "batches-exclude-archived-maybe",
        "/v1/batches",
        {"exclude_archived": "maybe"},
        ("exclude_archived",),
    ),
    ("batches-nul-in-project", "/v1/batches", {"project": "\u0000"}, ("project", "NUL")),
]


@pytest.mark.parametrize(
    ("path", "params", "words"), [q[1:] for q in BAD_QUERIES], ids=[q[0] for q in BAD_QUERIES]
)
async def test_bad_list_query_is_400(
    live_world: World, path: str, params: dict[str, str], words: tuple[str, ...]
) -> None:
    """A list query with a bad filter, limit, token or boolean is a 400 naming the parameter."""
    status, body = await live_world.api.call("GET", path, params=params)
    assert_error(status, body, 400, *words)


BAD_PATHS = [
    ("GET", "/v1/task/%00"),
    ("POST", "/v1/task/%00/cancel"),
    ("POST", "/v1/task/a%00b/setMetadata"),
    ("GET", "/v1/batches/%00"),
    ("GET", "/v1/batches/%00/status"),
    ("POST", "/v1/batches/%00/finalize"),
    ("GET", "/v1/projects/%00"),
    ("POST", "/v1/projects/%00/setParams"),
]


@pytest.mark.parametrize(("method", "path"), BAD_PATHS)
async def test_nul_in_url_path_is_400(
    live_world: World, pool: asyncpg.Pool, method: str, path: str
) -> None:
    """An id or name with a NUL character is a 400 naming the URL path, not a database 500."""
    before = await snapshot(pool)
    status, body = await live_world.api.call(method, path, json={})
    assert_error(status, body, 400, "URL path", "NUL")
    assert await snapshot(pool) == before


@pytest.mark.parametrize(
    "path", ["/v1/task/%ED%A0%80", "/v1/task/%FF%FE", "/v1/batches/%FF", "/v1/projects/%C0%80"]
)
async def test_undecodable_url_path_is_not_a_500(live_world: World, path: str) -> None:
    """Percent-escapes that are not UTF-8 find nothing (404) instead of breaking the server."""
    status, body = await live_world.api.call("GET", path)
    assert_error(status, body, 404)


async def test_tampered_next_token_is_400(live_world: World) -> None:
    """A real next_token with one character flipped fails its signature check: 400."""
    api = live_world.api
    for _ in range(2):
        await api.task()
    status, page = await api.call("GET", "/v1/tasks", params={"limit": "1"})
    assert status == 200 and page["has_more"], page
    token = page["next_token"]
    status, _ = await api.call("GET", "/v1/tasks", params={"limit": "1", "next_token": token})
    assert status == 200
    for index in (0, len(token) // 2, len(token) - 2):
        flipped = "B" if token[index] == "A" else "A"
        tampered = token[:index] + flipped + token[index + 1 :]
        status, body = await api.call(
            "GET", "/v1/tasks", params={"limit": "1", "next_token": tampered}
        )
        assert_error(status, body, 400, "next_token")
    status, body = await api.call("GET", "/v1/tasks", params={"next_token": token[:-6]})
    assert_error(status, body, 400, "next_token")


async def test_next_token_of_another_world_is_400(live_world: World, test_api: Api) -> None:
    """A token is bound to the key's account and world: the test key cannot replay it."""
    await live_world.api.task()
    status, page = await live_world.api.call("GET", "/v1/tasks", params={"limit": "1"})
    assert status == 200 and page["has_more"], page
    status, body = await test_api.call(
        "GET", "/v1/tasks", params={"next_token": page["next_token"]}
    )
    assert_error(status, body, 400, "next_token")


@pytest.mark.parametrize(
    "params",
    [
        {"project": "no-such-project"},
        {"batch": "no-such-batch"},
        {"project": "no-such-project", "status": "pending"},
        {"unique_id": "no-such-uid"},
        {"tags": "no-such-tag"},
    ],
)
async def test_filter_on_unknown_name_is_empty_not_error(
    live_world: World, params: dict[str, str]
) -> None:
    """A filter on a name that does not exist matches nothing: 200 with empty docs."""
    status, body = await live_world.api.call("GET", "/v1/tasks", params=params)
    assert status == 200, body
    assert body["docs"] == [] and body["total"] == 0 and body["has_more"] is False
    assert "next_token" not in body


async def test_batch_filter_on_unknown_project_is_empty(live_world: World) -> None:
    """GET /v1/batches?project=<unknown> is 200 with no docs, not an error."""
    status, body = await live_world.api.call("GET", "/v1/batches", params={"project": "nope"})
    assert status == 200, body
    assert body["docs"] == [] and body["totalDocs"] == 0


# --- unknown ids, routes, methods and keys -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "words"),
    [
        ("GET", "/v1/task/000000000000000000000000", ("Task with that ID not found.",)),
        ("POST", "/v1/task/nope/cancel", ("Task with that ID not found.",)),
        ("POST", "/v1/task/nope/setMetadata", ("Task with that ID not found.",)),
        ("GET", "/v1/batches/nope", ("nope",)),
        ("POST", "/v1/batches/nope/finalize", ("nope",)),
        ("GET", "/v1/projects/nope", ("nope",)),
        ("POST", "/v1/projects/nope/setParams", ("nope",)),
        ("GET", "/v1/nothing-here", ("/v1/nothing-here",)),
        ("GET", "/v1/task/x/y/z/w", ("/v1/task/x/y/z/w",)),
        ("GET", "/no/such/page", ("No such endpoint",)),
    ],
)
async def test_unknown_object_or_endpoint_is_json_404(
    live_world: World, method: str, path: str, words: tuple[str, ...]
) -> None:
    """Unknown ids and unknown endpoints are a JSON 404 naming what was not found."""
    status, body = await live_world.api.call(method, path, json={})
    assert_error(status, body, 404, *words)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/tasks"),
        ("PATCH", "/v1/task/abc"),
        ("GET", "/v1/task/abc/cancel"),
        ("PUT", "/v1/projects"),
        ("DELETE", "/v1/batches/b1"),
    ],
)
async def test_wrong_method_is_json_405(live_world: World, method: str, path: str) -> None:
    """A known path with the wrong method is a JSON 405 naming the method."""
    status, body = await live_world.api.call(method, path)
    assert_error(status, body, 405, method)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer live_0000000000000000000000000000000",
        "Basic !!!not-base64!!!",
        "Basic bGl2ZV9ub3BlOg==",  # "live_nope:"
        "Basic Og==",  # ":" (empty user name)
        "Token abc",
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/tasks"), ("POST", CREATE), ("GET", "/v1/task/abc")]
)
async def test_missing_or_bad_key_is_json_401(
    http: aiohttp.ClientSession,
    base_url: str,
    pool: asyncpg.Pool,
    authorization: str | None,
    method: str,
    path: str,
) -> None:
    """No key, an unknown key or a malformed Authorization header is a JSON 401."""
    headers = {} if authorization is None else {"Authorization": authorization}
    count = await task_count(pool)
    async with http.request(method, base_url + path, json=TASK_BODY, headers=headers) as resp:
        assert_error(resp.status, await resp.json(content_type=None), 401, "API key")
    assert await task_count(pool) == count


@pytest.mark.parametrize("authorization", [None, "Bearer live_0000000000000000000000000000000"])
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/docs", 404),
        ("GET", "/nope", 404),
        ("GET", "/v1/no-such-endpoint", 404),
        ("POST", "/v1/task/x/y/z/w", 404),
        ("GET", "/favicon.ico/x", 404),
        ("DELETE", "/v1/tasks", 405),
        ("PUT", "/v1/projects", 405),
    ],
)
async def test_unrouted_path_is_404_before_any_key(
    http: aiohttp.ClientSession,
    base_url: str,
    authorization: str | None,
    method: str,
    path: str,
    status: int,
) -> None:
    """A path no route serves is a JSON 404 (a method the path does not take, a 405) with
    no key or a bad one: a typo in a URL is not reported as a key problem."""
    headers = {} if authorization is None else {"Authorization": authorization}
    async with http.request(method, base_url + path, headers=headers) as resp:
        body = await resp.json(content_type=None)
    assert_error(resp.status, body, status, method, path if status == 404 else method)


async def test_favicon_is_204_without_a_key(http: aiohttp.ClientSession, base_url: str) -> None:
    """Browsers fetch /favicon.ico on each page load: an empty 204, cached, not a 401/404."""
    async with http.get(base_url + "/favicon.ico") as resp:
        assert resp.status == 204
        assert await resp.read() == b""
        assert "max-age" in resp.headers["Cache-Control"]


async def test_non_utf8_key_is_401(base_url: str, account: NewAccount) -> None:
    """An Authorization header that is not UTF-8 is a 401, not a 500 while hashing it."""
    head = b"GET /v1/tasks HTTP/1.1\r\nAuthorization: Bearer live_\xff\xfe\r\n"
    status, body = await raw_http(base_url, head)
    assert_error(status, body, 401, "API key")


async def test_non_printable_idempotency_key_is_400(
    base_url: str, live_world: World, pool: asyncpg.Pool
) -> None:
    """An Idempotency-Key that is not UTF-8 text is a 400 naming the header; nothing written."""
    count = await task_count(pool)
    key = live_world.api.key.encode()
    head = (
        b"POST "
        + CREATE.encode()
        + b" HTTP/1.1\r\nAuthorization: Bearer "
        + key
        + b"\r\nIdempotency-Key: \xff\xfe\r\n"
    )
    status, body = await raw_http(base_url, head, json.dumps(TASK_BODY).encode())
    assert_error(status, body, 400, "Idempotency-Key")
    assert await task_count(pool) == count
