"""Isolation, generated from the OpenAPI document: every operation that acts for an
account is called against account A's LIVE objects, with other keys, every parameter and body
field that names an object filled with A's real ids and names.

tests/test_isolation.py is the hand-written table (exact 404 shapes, lists, names, unique_id,
idempotency). This file generalizes it: the operations come from the receiver's own
`GET /openapi.json`, so a newly documented endpoint is walked without anyone adding a line
here (the key-less ones are skipped, each with its reason in ACCOUNT_LESS).

A owns, in its live world, a project, a staging batch, tasks pending, started, completed
(with a queued callback), canceled and errored, a v2 chat task with an annotation, and a v2
delivery; marker strings sit in their metadata, responses, params and callback URL. Each
operation's requests (required fields only, every object at once, each object alone, by ids,
by names; each of A's tasks; with a next_token and an Idempotency-Key that A's live key
used) are sent by, in turn: B's live key, A's test key, and then, once they own objects of
the same names as A's ("twins"), A's test key again and C's live key. For every reply:

- no 5xx;
- a 2xx carries none of A's ids, names (but the intruder's own twins'), unique_id, markers,
  secrets or callback delivery ids; an error carries none that the request did not name;
- A's next_token is refused, A's saved Idempotency-Key reply is never replayed;
- A's rows (every table's rows of A's live world: tasks, batches, projects, callback
  deliveries and attempts, v2 deliveries and annotations, idempotency keys, the account and
  its keys...) are unchanged after the operation's requests;
- for reads, non-interference: each reply is byte for byte the same once A's live world is
  deleted (a count or a total shaped by A's objects shows no id, but it changes).

A control proves the requests reach real objects: with A's live key, at least 80 % of the GET
operations answer 200 with A's objects in the reply, and 80 % of the others answer 2xx (or
409, for a create naming A's existing object).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from taskhook.core.accounts import NewAccount
from taskhook.receiver.openapi import build_document
from tests.conftest import INGEST_SECRET

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

MakeAccount = Callable[[str], Awaitable[NewAccount]]
METHODS = ("get", "put", "post", "delete", "patch")
SINK = "http://127.0.0.1:9/callback"  # no dispatcher runs here: callbacks stay queued

# Operations with no account behind them, so nothing of A's to reach (each one is
# `security: []` in the document; test_account_less_operations_are_the_known_ones keeps this
# list complete, so a new key-less endpoint has to state its reason here).
ACCOUNT_LESS = {
    ("POST", "/v1/events"): "ingest: signed with the server-wide ingest secret by the "
    "workforce tooling, not with an account key; it names tasks of every account by design",
    ("GET", "/healthz"): "liveness: no key, no account data",
    ("GET", "/readyz"): "readiness: no key, no account data",
    ("GET", "/metrics"): "Prometheus counters: no key, no per-account labels",
    ("GET", "/openapi.json"): "the API description: no key, no account data",
    ("GET", "/files/{file_id}/{token}"): "a file's bytes behind its attachment_url: the "
    "unguessable token in the URL is the credential (as Scale's attachment URLs), no key",
}

# The operations on the caller's own account (default callback URL, signing secret) are
# not exempt: both worlds share the account row, so a test key may not change it (403),
# and A's row is compared after A's test key like after everyone else.

# Parameter and body field names that name one of A's objects -> which of A's values.
NAMED: dict[str, str] = {
    "task_id": "task_id",
    "project": "project_name",
    "project_name": "project_name",
    "project_id": "project_id",
    "batch": "batch_name",
    "batch_name": "batch_name",
    "batch_id": "batch_id",
    "unique_id": "unique_id",
    "delivery_id": "delivery_id",  # the v2 delivery (callback deliveries have no endpoint)
    "delivery_name": "delivery_name",
    "annotation_id": "annotation_id",
    "schema_id": "schema_id",
    "file_id": "file_id",
    "attachment_id": "file_id",  # a file that a delivered response names
    "dataset_id": "dataset_id",
    "email": "teammate_email",
    "group": "group_name",
}
# Kinds that belong to the account, not to a world (the team): A's test key may see them.
ACCOUNT_WIDE = ("teammate_email",)
# A bare `name` names what its path is about: /v1/batches/{name}, POST /v1/projects {name}.
NAME_BY_RESOURCE = (("batch", "batch_name"), ("project", "project_name"))
# Body fields that name the object a request makes: when it is the caller's own new object
# (B's project called like A's), its reply echoes the value, which is no leak.
OWN_NAME_FIELDS = ("name", "unique_id")
# What a twin shares with A's object: the names (an intruder may own the same ones).
TWIN_KINDS = ("project_name", "batch_name", "unique_id", "delivery_name")
# Query parameters that only widen what a reply shows: every request asks for all of it.
SHOW_ALL = ("expand", "opts")
# An id and a name of the same kind of object: requests also name it by one of them alone.
ALTERNATIVES = (
    ("project_id", "project_name"),
    ("batch_id", "batch_name"),
    ("delivery_id", "delivery_name"),
)


def _document_operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    doc = build_document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


OPERATIONS = [(m, p) for m, p, _ in _document_operations() if (m, p) not in ACCOUNT_LESS]


# --- A's world ---------------------------------------------------------------------------------


@dataclass
class World:
    """Account A's live objects (values by kind), the keys, and every string that must not
    reach another account or world."""

    a: NewAccount
    b: NewAccount
    c: NewAccount  # holds twins of A's names (as A's test world does, later)
    values: dict[str, list[str]]  # kind (NAMED's values) -> A's live values
    markers: list[str]
    callback_ids: set[int]  # A's callback delivery ids (integers: matched by key, not text)
    owner_only: list[str] = field(default_factory=list)  # A's account id and name

    def forbidden(self, intruder_is_a: bool, twins: bool = False) -> set[str]:
        """With twins, the intruder has objects of A's names: the names are its own too."""
        shared = [*TWIN_KINDS] if twins else []
        shared.append("schema_id")  # schemas are server-wide content
        if intruder_is_a:
            shared.extend(ACCOUNT_WIDE)
        found = {v for kind, vs in self.values.items() if kind not in shared for v in vs}
        found |= set(self.markers)
        # A's secrets reach no one through the API (rotate shows a new secret, once)
        found |= {self.a.live_key, self.a.callback_auth_key, self.a.signing_secret}
        if not intruder_is_a:  # A's test key is A: it may see its own account
            found |= set(self.owner_only)
        return found


_NO_BODY: Any = object()


class Http:
    """Raw requests: (status, text), so a reply is searched exactly as sent."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session, self.base = session, base_url

    async def call(
        self,
        key: str | None,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = _NO_BODY,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, str]:
        status, text, _ = await self.full(key, method, path, params, body, headers, raw)
        return status, text

    async def full(
        self,
        key: str | None,
        method: str,
        path: str,
        params: list[tuple[str, str]] | None = None,
        body: Any = _NO_BODY,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        """(status, text, headers)."""
        hdrs = dict(headers or {})
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not _NO_BODY and raw is None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base + path, params=params, data=data, headers=hdrs
        ) as resp:
            return resp.status, await resp.text(), dict(resp.headers)

    async def ok(self, key: str, method: str, path: str, body: Any = _NO_BODY, **kw: Any) -> Any:
        status, text = await self.call(key, method, path, body=body, **kw)
        assert status == 200, (method, path, status, text)
        return json.loads(text)

    async def event(self, task_id: str, type_: str, **fields: Any) -> None:
        event = {"event_id": secrets.token_hex(8), "type": type_, "task_id": task_id, **fields}
        text = json.dumps(event)
        msg_id, at = "msg_" + secrets.token_hex(6), datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(INGEST_SECRET).sign(msg_id, at, text),
            "Content-Type": "application/json",
        }
        status, reply = await self.call(
            None, "POST", "/v1/events", raw=text.encode(), headers=headers
        )
        assert status == 200 and json.loads(reply)["results"][0]["status"] == "applied", reply


async def _own_world(http: Http, key: str, prefix: str) -> None:
    """The intruder's own objects, named apart from A's: its lists are not trivially empty."""
    await http.ok(key, "POST", "/v1/projects", {"name": f"{prefix}-proj", "type": "categorization"})
    await http.ok(
        key,
        "POST",
        "/v1/task/categorization",
        {"project": f"{prefix}-proj", "attachment": "a", "categories": ["x"]},
    )


async def _upload(http: Http, key: str, content: str) -> Any:
    """A file of A's live world (its bytes a marker), as upload_file makes it."""
    form = aiohttp.FormData()
    form.add_field("file", content.encode(), filename="a.txt")
    headers = {"Authorization": f"Bearer {key}"}
    async with http.session.post(http.base + "/v1/files/upload", data=form, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _studio(http: Http, key: str, tag: str, project: str, batch: str) -> tuple[str, str]:
    """A teammate of A's (account-wide), assigned to A's project, in a group that A's batch
    is given to."""
    mate, group = f"a-mate-{tag}@example.com", f"a-group-{tag}"
    await http.ok(key, "POST", "/v1/teams/invite", {"emails": [mate], "team_role": "labeler"})
    assign = {"emails": [mate], "projects": [project]}
    await http.ok(key, "POST", "/v1/studio/assignments/add", assign)
    groups = f"/v1/studio/projects/{quote(project, safe='')}/groups"
    await http.ok(key, "POST", groups, {"name": group, "emails": [mate]})
    await http.ok(key, "PUT", f"/v1/studio/batches/{quote(batch, safe='')}", {"groups": [group]})
    return mate, group


async def build_world(http: Http, make_account: MakeAccount) -> World:
    """A's live project (rapid: its batch is staging) with params, a batch with metadata,
    tasks pending (with unique_id and tags), started, completed (a queued callback), canceled
    and errored, and a v2 chat task completed with an annotation; the completed ones are in a
    v2 delivery. Every task's metadata and callback URL, the responses, the batch metadata,
    the project params and the annotation carry marker strings."""
    tag = secrets.token_hex(4)
    a, b, c = [await make_account(f"{who}-{tag}") for who in ("owner-a", "intruder-b", "twin-c")]
    kinds = ("meta", "resp", "batch", "params", "ann", "chat", "file", "quality")
    mark = {k: f"MARK-{k}-{tag}" for k in kinds}
    project, batch, uid = f"a-proj-{tag}", f"a-batch-{tag}", f"a-uid-{tag}"
    delivery, callback = f"a-delivery-{tag}", f"{SINK}-{tag}"
    key = a.live_key
    dataset = f"a-dataset-{tag}"
    project_body = {
        "name": project,
        "type": "categorization",
        "rapid": True,
        "params": {"marker": mark["params"]},
        "datasetId": dataset,
    }
    await http.ok(key, "POST", "/v1/projects", project_body)
    uploaded = await _upload(http, key, mark["file"])
    batch_body = {"project": project, "name": batch, "metadata": {"marker": mark["batch"]}}
    await http.ok(key, "POST", "/v1/batches", batch_body)

    async def task(**fields: Any) -> str:
        body = {
            "project": project,
            "attachment": "a",
            "categories": ["x", "y"],
            "callback_url": callback,
            "metadata": {"marker": mark["meta"]},
            **fields,
        }
        return str((await http.ok(key, "POST", "/v1/task/categorization", body))["task_id"])

    chat_body = {
        "project_name": project,
        "batch_name": batch,
        "template_variables": {"prompt": mark["chat"]},
        "metadata": {"marker": mark["meta"]},
        "callback_url": callback,
    }
    pending, started, completed, canceled, errored, chat = await asyncio.gather(
        task(batch=batch, unique_id=uid, tags=["t1", "t2"]),
        *(task() for _ in range(4)),
        http.ok(key, "POST", "/v2/task/chat", chat_body),
    )
    chat_id = chat["task_id"]
    annotation = {"key": "q", "type": "text", "value": mark["ann"]}
    message = {"role": "user", "content": {"text": "hi"}, "source_id": "s1"}
    threads = [{"turns": [{"messages": [message], "annotations": [annotation]}]}]
    await asyncio.gather(
        http.event(started, "task.started"),
        http.event(
            completed,
            "task.completed",
            response={"category": "x", "m": mark["resp"], "file": uploaded["id"]},
        ),
        http.event(chat_id, "task.completed", threads=threads),
        http.event(errored, "task.errored", error="bad attachment"),
        http.ok(key, "POST", f"/v1/task/{canceled}/cancel"),
    )
    for task_id in (completed, chat_id):  # one after the other: the first makes the delivery
        await http.event(task_id, "task.delivered", delivery_name=delivery)

    def get(path: str, **query: str) -> Awaitable[Any]:
        return http.ok(key, "GET", path, params=list(query.items()))

    v2_project, v2_batch, deliveries, chat_task, delivered, callbacks, _, _ = await asyncio.gather(
        get("/v2/project", project_name=project),
        get("/v2/batch", batch_name=batch),
        get("/v2/deliveries", project_name=project),
        get("/v2/task", task_id=chat_id),
        get("/v2/delivery/tasks", project_name=project),
        get(f"/v1/task/{completed}/callbacks"),
        _own_world(http, b.live_key, f"b-{tag}"),
        _own_world(http, a.test_key, f"t-{tag}"),
    )
    [delivery_id] = [d["id"] for d in deliveries["deliveries"]]
    mate, group = await _studio(http, key, tag, project, batch)
    quality = [
        (
            await http.ok(
                key,
                "POST",
                f"/v1/{kind}_tasks/imageannotation",
                {
                    "project": project,
                    "attachment": "a",
                    "geometries": {"box": {"objects_to_annotate": ["x"]}},
                    "expected_response": {"m": mark["quality"]},
                },
            )
        )["id"]
        for kind in ("evaluation", "training")
    ]
    annotation_id = chat_task["threads"][0]["turns"][0]["annotations"][0]["id"]
    schema_ids = sorted({d["response_schema_id"] for d in delivered["docs"]} - {None})
    callback_ids = {d["delivery_id"] for d in callbacks["deliveries"]}
    assert callback_ids and schema_ids, (callbacks, delivered)
    return World(
        a=a,
        b=b,
        c=c,
        values={
            # the completed task first: most reads show the most of it
            "task_id": [completed, pending, started, canceled, errored, chat_id],
            "project_name": [project],
            "project_id": [v2_project["id"]],
            "batch_name": [batch],
            "batch_id": [v2_batch["id"]],
            "unique_id": [uid],
            "delivery_id": [delivery_id],
            "delivery_name": [delivery],
            "annotation_id": [annotation_id],
            "schema_id": schema_ids,
            "file_id": [uploaded["id"]],
            "dataset_id": [dataset],
            "teammate_email": [mate],
            "group_name": [group],
            "quality_task_id": quality,
        },
        markers=[*mark.values(), callback, uploaded["attachment_url"].rsplit("/", 1)[1]],
        callback_ids=callback_ids,
        owner_only=[a.account_id, a.name],
    )


@pytest.fixture
async def world(
    http: aiohttp.ClientSession, base_url: str, make_account: MakeAccount
) -> tuple[Http, World]:
    client = Http(http, base_url)
    return client, await build_world(client, make_account)


async def make_twins(http: Http, key: str, world: World) -> None:
    """The intruder's own project, batch, task (completed, with A's unique_id) and v2
    delivery, named as A's are: a lookup by A's names then finds the intruder's own object,
    and whatever it reads next by that name must still be the intruder's. Creates that an
    operation's requests already made are 409s here, which is fine."""
    v = {kind: values[0] for kind, values in world.values.items()}
    project, batch = v["project_name"], v["batch_name"]
    await http.call(key, "POST", "/v1/projects", body={"name": project, "type": "categorization"})
    await http.call(key, "POST", "/v1/batches", body={"project": project, "name": batch})
    body = {
        "project": project,
        "batch": batch,
        "attachment": "twin",
        "categories": ["x"],
        "unique_id": v["unique_id"],
    }
    status, text = await http.call(key, "POST", "/v1/task/categorization", body=body)
    if status != 200:
        return
    task = json.loads(text)
    if task["status"] == "pending":  # a live task: the workforce completes it
        await http.event(task["task_id"], "task.completed", response={"category": "x"})
    await http.event(task["task_id"], "task.delivered", delivery_name=v["delivery_name"])


# --- A's rows ----------------------------------------------------------------------------------


_ROW_QUERY: list[str] = []  # one statement, built once (the schema is fixed)
_COLUMNS: dict[str, set[str]] = {}


async def _columns(pool: asyncpg.Pool) -> dict[str, set[str]]:
    """Every table of the schema and its columns (the same schema all session long)."""
    if not _COLUMNS:
        for r in await pool.fetch(
            "SELECT table_name::text AS t, column_name::text AS c "
            "FROM information_schema.columns WHERE table_schema = current_schema()"
        ):
            _COLUMNS.setdefault(r["t"], set()).add(r["c"])
    return _COLUMNS


async def a_rows(pool: asyncpg.Pool, account_id: str) -> Any:
    """Every row of A's live world, found from the schema itself (a new table with an
    account_id or task_id column is covered without a change here): rows with A's account
    and is_test false; rows of A's live tasks; the attempts of A's callback deliveries; the
    account-wide rows of A (its `accounts` row and tables with account_id but no world)."""
    if not _ROW_QUERY:
        columns = await _columns(pool)
        live_tasks = "SELECT id FROM tasks WHERE account_id = $1 AND NOT is_test"
        where: dict[str, str] = {}
        for table, cols in sorted(columns.items()):
            if table == "accounts":
                where[table] = "id = $1"
            elif {"account_id", "is_test"} <= cols:
                where[table] = "account_id = $1 AND NOT is_test"
            elif "task_id" in cols:
                where[table] = f"task_id IN ({live_tasks})"
            elif table == "delivery_attempts":
                where[table] = (
                    f"delivery_id IN (SELECT id FROM deliveries WHERE task_id IN ({live_tasks}))"
                )
            elif "account_id" in cols:
                where[table] = "account_id = $1"
        _ROW_QUERY.append(
            "SELECT "
            + ", ".join(
                f'ARRAY(SELECT to_jsonb(t)::text FROM "{table}" t WHERE {cond} ORDER BY 1)'
                f' AS "{table}"'
                for table, cond in where.items()
            )
        )
    state = dict(await pool.fetchrow(_ROW_QUERY[0], account_id))
    assert state["tasks"], "A has live tasks"
    return state


async def delete_a_live_world(pool: asyncpg.Pool, account_id: str) -> None:
    """Delete every row of A's live world (what refers to its tasks and projects goes with
    them, ON DELETE CASCADE); A's account and keys stay."""
    tables = [
        table
        for table, cols in sorted((await _columns(pool)).items())
        if {"account_id", "is_test"} <= cols and table != "api_keys"
    ]
    async with pool.acquire() as conn, conn.transaction():
        for table in tables:
            await conn.execute(
                f'DELETE FROM "{table}" WHERE account_id = $1 AND NOT is_test', account_id
            )
    live = "SELECT count(*) FROM tasks WHERE account_id = $1 AND NOT is_test"
    assert await pool.fetchval(live, account_id) == 0


# --- requests from the document ------------------------------------------------------------------


Slot = tuple[str, str]  # (where: "path" | "query" | "body", name)


@dataclass(frozen=True)
class Request:
    label: str
    path: str
    params: list[tuple[str, str]]
    body: Any  # _NO_BODY when the operation takes none
    sent: frozenset[str]  # A's values the request names
    own: frozenset[str]  # of those, the ones that name the caller's own new object
    headers: dict[str, str] = field(default_factory=dict)
    a_token: bool = False  # carries a next_token issued to A's live key
    a_made: frozenset[str] = frozenset()  # ids A's live key made with this Idempotency-Key


class Builder:
    """Fills one operation of the served document with A's values."""

    def __init__(self, doc: dict[str, Any], method: str, path: str, world: World) -> None:
        self.doc, self.method, self.path, self.world = doc, method, path, world
        item = doc["paths"][path]
        self.op = item[method.lower()]
        self.params = [
            self.resolve(p) for p in [*item.get("parameters", []), *self.op.get("parameters", [])]
        ]
        content = self.op.get("requestBody", {}).get("content", {})
        self.body = (
            self.resolve(content["application/json"].get("schema", {}))
            if ("application/json" in content)
            else None
        )

    def resolve(self, schema: Any) -> Any:
        while isinstance(schema, dict) and "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def kind(self, name: str) -> str | None:
        """Which of A's values a parameter or field of this name takes, if any."""
        if name == "name":
            return next((kind for word, kind in NAME_BY_RESOURCE if word in self.path), None)
        return NAMED.get(name)

    def fields(self) -> tuple[dict[str, Any], list[str], list[list[str]]] | None:
        """A JSON object body: its properties, required fields, and the alternatives of
        `anyOf: [{required: [project]}, {required: [batch]}]` (a project or a batch)."""
        schema = self.body
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            return None
        alternatives = [
            list(option.get("required", []))
            for option in map(self.resolve, schema.get("anyOf", schema.get("oneOf", [])))
            if "type" not in option and option.get("required")
        ]
        return schema["properties"], list(schema.get("required", [])), alternatives

    def minimal(self, schema: Any, depth: int = 0) -> Any:
        """A small value the schema accepts (for what names nothing of A's)."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or depth > 8:
            return "isogen"
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return next((v for v in schema["enum"] if v is not None), schema["enum"][0])
        options = [self.resolve(o) for o in schema.get("anyOf", schema.get("oneOf", []))]
        if options and all("type" in o or "$ref" in o or "const" in o for o in options):
            if any(o.get("type") == "null" for o in options):
                return None
            return self.minimal(options[0], depth + 1)
        if options:  # constraint alternatives of an object: meet the first
            schema = {**schema, "required": [*schema.get("required", []), *options[0]["required"]]}
            for key in ("anyOf", "oneOf"):
                schema.pop(key, None)
            return self.minimal(schema, depth + 1)
        for part in schema.get("allOf", []):
            schema = {**self.resolve(part), **{k: v for k, v in schema.items() if k != "allOf"}}
        return self._typed(schema, depth)

    def _typed(self, schema: dict[str, Any], depth: int) -> Any:
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            value = {
                n: self.minimal(props.get(n, {}), depth + 1) for n in schema.get("required", [])
            }
            for i in range(schema.get("minProperties", 0) - len(value)):
                value[f"isogen{i}"] = "isogen"
            return value
        if kind == "array":
            return [self.minimal(schema.get("items", {}), depth + 1)] * schema.get("minItems", 0)
        if kind in ("integer", "number"):
            return max(schema.get("minimum", 0), min(schema.get("maximum", 0), 0))
        if kind in ("boolean", "null"):
            return False if kind == "boolean" else None
        text = "isogen" * (1 + schema.get("minLength", 0) // 6)
        return text[: schema.get("maxLength", len(text))]

    def requests(self, task_id: str) -> list[Request]:
        """Several requests, each a way to name A's objects: only what is required (the first
        alternative of a body's "a project or a batch"), each other alternative, every object
        it can name at once, each one alone (with what is required), and, where an object has
        an id and a name, by ids only and by names only. Duplicates are dropped."""
        required: list[Slot] = []
        optional: list[Slot] = []  # those that name one of A's objects
        for p in self.params:
            if p.get("in") in ("path", "query"):
                if p.get("required"):
                    required.append((p["in"], p["name"]))
                elif self.kind(p["name"]):
                    optional.append((p["in"], p["name"]))
        alternatives: list[list[Slot]] = [[]]
        fields = self.fields()
        if fields is not None:
            props, names, alts = fields
            required += [("body", n) for n in names]
            alternatives = [[("body", n) for n in alt] for alt in alts] or [[]]
            first = set(alternatives[0]) | set(required)
            optional += [("body", n) for n in props if self.kind(n) and ("body", n) not in first]
        choices: dict[str, list[Slot]] = {"required": alternatives[0]}
        for alt in alternatives[1:]:
            choices[f"required, else {[n for _, n in alt]}"] = alt
        choices["all"] = alternatives[0] + optional
        for slot in optional:
            choices[f"only {slot[1]}"] = alternatives[0] + [slot]
        given = {n for _, n in optional}
        for by, other in (("ids", 1), ("names", 0)):
            drop = {pair[other] for pair in ALTERNATIVES if set(pair) <= given}
            if drop:
                choices[f"by {by}"] = alternatives[0] + [s for s in optional if s[1] not in drop]
        shown = [
            ("query", p["name"])
            for p in self.params
            if p.get("in") == "query" and p["name"] in SHOW_ALL
        ]
        built: dict[str, Request] = {}
        for label, extra in choices.items():
            request = self.build(label, required + extra + shown, task_id)
            built.setdefault(repr((request.path, request.params, request.body)), request)
        return list(built.values())

    def build(self, label: str, slots: list[Slot], task_id: str) -> Request:
        path, params, sent, own = self.path, [], set(), set()
        fields = self.fields()
        body: Any = _NO_BODY
        if fields is not None:
            body = {}
        elif self.body is not None:
            body = self.minimal(self.body)  # an array or a free object: nothing to name in it
        schemas = {(p.get("in"), p.get("name")): p.get("schema", {}) for p in self.params}
        if fields is not None:
            schemas.update({("body", n): s for n, s in fields[0].items()})
        for where, name in slots:
            kind = self.kind(name)
            if name in SHOW_ALL and where == "query":
                items = self.resolve(schemas.get((where, name), {})).get("items", {})
                params += [(name, v) for v in self.resolve(items).get("enum", [])]
                continue
            if kind is not None:
                value = task_id if kind == "task_id" else self.world.values[kind][0]
                sent.add(value)
                if where == "body" and name in OWN_NAME_FIELDS:
                    own.add(value)
            else:
                value = self.minimal(schemas.get((where, name), {}))
            if where == "path":
                path = path.replace("{" + name + "}", quote(str(value), safe=""))
            elif where == "query":
                params.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
            else:
                body[name] = value
        return Request(label, path, params, body, frozenset(sent), frozenset(own))

    @property
    def idempotent(self) -> bool:
        return any(
            p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key"
            for p in self.params
        )


# --- the checks ----------------------------------------------------------------------------------


def leaks(
    world: World, request: Request, status: int, text: str, intruder_is_a: bool, twins: bool
) -> list[str]:
    """What of A's a reply shows that it must not: in a 2xx anything of A's (but the name of
    the caller's own new object, or names its twins share), in an error anything the request
    did not name."""
    allowed = request.own if 200 <= status < 300 else request.sent
    forbidden = world.forbidden(intruder_is_a, twins) | request.a_made
    found = sorted(v for v in forbidden - allowed if v in text)
    try:
        reply = json.loads(text)
    except ValueError:
        reply = None
    found += [f"callback delivery {d}" for d in _delivery_ids(reply) & world.callback_ids]
    return found


def _delivery_ids(node: Any) -> set[int]:
    if isinstance(node, dict):
        ids = {v for k, v in node.items() if k == "delivery_id" and isinstance(v, int)}
        return ids.union(*(_delivery_ids(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_delivery_ids(v) for v in node))
    return set()


async def served_document(http: Http) -> dict[str, Any]:
    status, text = await http.call(None, "GET", "/openapi.json")
    assert status == 200, text
    return json.loads(text)  # type: ignore[no-any-return]


def requests_for(builder: Builder, world: World) -> list[Request]:
    """The builder's requests for each of A's tasks (every state) when the operation names a
    task, else for one."""
    named = [p["name"] for p in builder.params if p.get("in") in ("path", "query")]
    fields = builder.fields()
    named += list(fields[0] if fields else [])
    tasks = world.values["task_id"] if "task_id" in named else world.values["task_id"][:1]
    return [r for task_id in tasks for r in builder.requests(task_id)]


async def with_a_tokens(http: Http, world: World, builder: Builder) -> list[Request]:
    """A list's requests again, each with a `next_token` that A's live key got for it (a
    page of one): a position in A's list, which no other key may use."""
    query = {p["name"] for p in builder.params if p.get("in") == "query"}
    if builder.method != "GET" or "next_token" not in query:
        return []
    found = []
    for request in requests_for(builder, world):
        params = [(k, v) for k, v in request.params if k not in ("limit", "next_token")]
        if "limit" in query:
            params.append(("limit", "1"))
        status, text = await http.call(world.a.live_key, "GET", request.path, params=params)
        reply = json.loads(text) if status == 200 else None
        token = reply.get("next_token") if isinstance(reply, dict) else None
        if isinstance(token, str) and token:
            found.append(
                Request(
                    request.label + ", A's next_token",
                    request.path,
                    [*params, ("next_token", token)],
                    request.body,
                    request.sent | {token},
                    request.own,
                    a_token=True,
                )
            )
    return found


async def with_a_idempotency_keys(http: Http, world: World, builder: Builder) -> list[Request]:
    """A create's requests again, each sent first by A's live key with an Idempotency-Key of
    its own: the intruder sends the same request with the same key and must get a reply of
    its own, never A's saved one (nor anything A made with it)."""
    if not builder.idempotent:
        return []
    found = []
    for request in requests_for(builder, world):
        headers = {"Idempotency-Key": f"a-idem-{secrets.token_hex(8)}"}
        status, text = await http.call(
            world.a.live_key,
            builder.method,
            request.path,
            params=request.params,
            body=request.body,
            headers=headers,
        )
        made = _ids(json.loads(text)) if 200 <= status < 300 else set()
        found.append(
            dataclasses.replace(
                request,
                label=request.label + ", A's Idempotency-Key",
                headers=headers,
                sent=request.sent | set(headers.values()),
                a_made=frozenset(made),
            )
        )
    return found


def _ids(node: Any) -> set[str]:
    """The string ids in a reply (task_id, id, delivery ids...)."""
    if isinstance(node, dict):
        own = {v for k, v in node.items() if k in ("id", "task_id") and isinstance(v, str)}
        return own.union(*(_ids(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_ids(v) for v in node))
    return set()


@pytest.mark.parametrize(
    ("method", "path"), [pytest.param(m, p, id=f"{m} {p}") for m, p in OPERATIONS]
)
async def test_operation_does_not_reach_a_live_objects(
    method: str, path: str, world: tuple[Http, World], pool: asyncpg.Pool
) -> None:
    """B's live key, A's test key, then A's test key and C's live key with twins of A's
    names, each naming A's live objects: no 5xx, no leak, no change, no interference."""
    http, w = world
    doc = await served_document(http)
    assert method.lower() in doc["paths"].get(path, {}), f"{method} {path} is no longer served"
    builder = Builder(doc, method, path, w)
    requests = requests_for(builder, w)
    requests += await with_a_tokens(http, w, builder)
    requests += await with_a_idempotency_keys(http, w, builder)  # before A's rows are read
    # (who, key, is A, has twins): first with nothing of A's names, then with twins of them
    intruders = [
        ("B live", w.b.live_key, False, False),
        ("A test", w.a.test_key, True, False),
        ("A test with twins", w.a.test_key, True, True),
        ("C live with twins", w.c.live_key, False, True),
    ]
    problems: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    used: set[tuple[str, str]] = set()  # (key, Idempotency-Key): a repeat replays its own
    for who, key, is_a, twins in intruders:
        if twins:
            await make_twins(http, key, w)
        before = await a_rows(pool, w.a.account_id)
        statuses[who] = Counter()
        for request in requests:
            keys = {(key, value) for value in request.headers.values()}
            if keys & used:
                continue  # sent already by this key (before it had twins)
            used |= keys
            status, text, headers = await http.full(
                key, method, request.path, request.params, request.body, request.headers
            )
            statuses[who][status] += 1
            where = f"{who} {method} {request.path} {request.params} ({request.label})"
            if status >= 500:
                problems.append(f"{where}: {status} {text[:200]}")
            if request.a_token and 200 <= status < 300:
                problems.append(f"{where}: {status}: A's next_token was accepted")
            if "Idempotent-Replayed" in headers:
                problems.append(f"{where}: {status}: A's saved reply was replayed: {text[:300]}")
            found = leaks(w, request, status, text, is_a, twins)
            if found:
                problems.append(f"{where}: {status} shows A's {found}: {text[:300]}")
        after = await a_rows(pool, w.a.account_id)
        for table in sorted(set(before) | set(after)):
            if before.get(table) != after.get(table):
                problems.append(f"{who} {method} {path}: changed A's rows in {table}")
    if method == "GET":
        problems += await interference(http, pool, w, requests, intruders)
    print(f"{method} {path}: " + "; ".join(f"{k} {dict(c)}" for k, c in statuses.items()))
    assert requests
    assert not problems, "\n".join(problems)


async def interference(
    http: Http,
    pool: asyncpg.Pool,
    w: World,
    requests: list[Request],
    intruders: list[tuple[str, str, bool, bool]],
) -> list[str]:
    """Non-interference, for reads: every intruder reply is the same, byte for byte, once
    A's live world is deleted. A reply that changes was shaped by A's objects, even where it
    shows none of their ids (a count, a total, has_more, an order)."""
    keys = {key: who for who, key, _, _ in intruders}  # the last phase of each key
    replies = {}
    for key in keys:
        for i, request in enumerate(requests):
            replies[key, i] = await http.call(
                key, "GET", request.path, params=request.params, headers=request.headers
            )
    await delete_a_live_world(pool, w.a.account_id)
    problems = []
    for (key, i), (status, text) in replies.items():
        request = requests[i]
        again = await http.call(
            key, "GET", request.path, params=request.params, headers=request.headers
        )
        if again != (status, text):
            problems.append(
                f"{keys[key]} GET {request.path} {request.params} ({request.label}): the reply "
                f"depends on A's live objects: {status} {text[:300]} then, without them, "
                f"{again[0]} {again[1][:300]}"
            )
    return problems


async def test_a_live_key_reaches_its_objects(world: tuple[Http, World]) -> None:
    """The control: the same requests with A's live key reach A's objects (so the intruder
    test cannot pass by sending garbage). At least 80 % of the GET operations answer 200
    with A's objects in the reply; then, one after another, at least 80 % of the others
    answer 2xx, or 409 for a create that names A's existing object."""
    http, w = world
    doc = await served_document(http)
    reached: dict[bool, list[str]] = {True: [], False: []}
    missed: dict[bool, list[str]] = {True: [], False: []}
    ordered = sorted(OPERATIONS, key=lambda op: op[0] != "GET")  # reads before writes
    for method, path in ordered:
        is_get = method == "GET"
        hit = False
        for request in requests_for(Builder(doc, method, path, w), w):
            status, text = await http.call(
                w.a.live_key, method, request.path, params=request.params, body=request.body
            )
            if is_get:
                hit |= status == 200 and any(v in text for v in w.forbidden(False))
            else:
                hit |= 200 <= status < 300 or status == 409
        (reached if hit else missed)[is_get].append(f"{method} {path}")
    for is_get, kind in ((True, "GET"), (False, "other")):
        total = len(reached[is_get]) + len(missed[is_get])
        print(f"A's live key: {len(reached[is_get])} of {total} {kind} operations reached A's")
        print(f"  not: {missed[is_get]}")
        assert len(reached[is_get]) >= 0.8 * total, missed[is_get]


async def test_operations_come_from_the_served_document(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    """The walked operations are exactly the served ones (minus the account-less)."""
    doc = await served_document(Http(http, base_url))
    served = {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in METHODS}
    assert served - set(ACCOUNT_LESS) == set(OPERATIONS)


def test_account_less_operations_are_the_known_ones() -> None:
    """Every key-less operation of the document is in ACCOUNT_LESS with its reason, and
    every operation listed there is key-less."""
    doc = build_document()
    keyless = {
        (m, p) for m, p, op in _document_operations() if op.get("security", doc["security"]) == []
    }
    assert keyless == set(ACCOUNT_LESS)
