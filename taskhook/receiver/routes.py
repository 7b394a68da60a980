"""Each API route declared once, beside its handler: its query model, body, reply and error
codes. From that one declaration come the aiohttp route, the parsing of the query string
and the body before the handler runs, the OpenAPI document (openapi.py) and, in an app
built with `validate_replies`, a check of every 200 reply against its reply type.

Query models are pydantic models whose field types parse the raw strings themselves and
raise the SDK-style BadRequest (pydantic lets it through), so a bad parameter is the same
400 with the same message it always was; the fields are checked in declaration order.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, TypeAdapter, ValidationError

from taskhook.core.errors import BadRequest
from taskhook.core.responses import ok
from taskhook.core.validation import decode_json, format_validation_error, parse_model
from taskhook.receiver.idempotency import run_create
from taskhook.receiver.keys import VALIDATE_REPLIES

JSON = "application/json"
Q = typing.TypeVar("Q", bound=BaseModel)


@dataclasses.dataclass(frozen=True)
class Body:
    """A request body: the shape it is documented with, and how its raw bytes become the
    handler's `body` (None: the handler reads the body itself, e.g. to verify a
    signature over the raw bytes first)."""

    schema: Any  # a type pydantic describes, or a JSON Schema
    description: str
    parse: Callable[[bytes], Any] | None
    required: bool = True
    media: str = JSON


def model_body(model: type[BaseModel], description: str) -> Body:
    return Body(model, description, lambda raw: parse_model(model, decode_json(raw)))


def bare_body(schema: Any, description: str, empty: Any) -> Body:
    """A bare JSON value; no body means `empty` (the SDK sends `{}` and `[]` as no body)."""

    def parse(raw: bytes) -> Any:
        return decode_json(raw) if raw.strip() else empty

    return Body(schema, description, parse, required=False)


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation. `reply` is a type, or a JSON Schema for a reply that is not JSON
    (`media`). `params` describes path parameters (a description or a schema).
    `idempotent` creates run in run_create with the Idempotency-Key header: the handler
    gets the connection and the body is parsed inside the transaction, so a refusal is
    the saved reply too. `guard` runs before any parsing (e.g. "live keys only")."""

    method: str
    path: str
    handler: Callable[..., Awaitable[Any]]
    tag: str
    summary: str
    reply: Any
    op_id: str = ""
    errors: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    body: Body | None = None
    description: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    headers: tuple[dict[str, Any], ...] = ()
    idempotent: bool = False
    guard: Callable[[web.Request], None] | None = None
    public: bool = False
    shed: bool = True
    media: str = JSON
    redirect: str | None = None  # a 302 with this description instead of a 200

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if self.guard is not None:
            self.guard(request)
        kwargs: dict[str, Any] = {}
        if self.query is not None:
            kwargs["query"] = parse_query(self.query, request.query)
        parse = self.body.parse if self.body is not None else None
        if self.idempotent:
            raw = await request.read()

            async def work(conn: Any) -> Any:
                body = parse(raw) if parse is not None else raw
                return await self.handler(request, conn, body, **kwargs)

            response: Any = await run_create(request, raw, work)
        else:
            if parse is not None:
                kwargs["body"] = parse(await request.read())
            response = await self.handler(request, **kwargs)
        if not isinstance(response, web.StreamResponse):
            response = ok(response)
        if request.app.get(VALIDATE_REPLIES) and response.status == 200 and self.adapter:
            assert isinstance(response, web.Response) and isinstance(response.body, bytes)
            self.adapter.validate_json(response.body)
        return response

    @functools.cached_property
    def adapter(self) -> TypeAdapter[Any] | None:
        """None for a reply that is not JSON or is given as a JSON Schema."""
        if self.media != JSON or isinstance(self.reply, dict):
            return None
        return TypeAdapter(self.reply)


class Api:
    """The routes of one module: `routes` for the app, `ops` for the document."""

    def __init__(self, tag: str, prefix: str = "", **defaults: Any) -> None:
        self.tag, self.prefix, self.defaults = tag, prefix, defaults
        self.routes = web.RouteTableDef()
        self.ops: list[Op] = []

    def get(self, path: str, summary: str, reply: Any, **kw: Any) -> Callable[[Any], Any]:
        return self.route("GET", path, summary, reply, **kw)

    def post(self, path: str, summary: str, reply: Any, **kw: Any) -> Callable[[Any], Any]:
        return self.route("POST", path, summary, reply, **kw)

    def put(self, path: str, summary: str, reply: Any, **kw: Any) -> Callable[[Any], Any]:
        return self.route("PUT", path, summary, reply, **kw)

    def delete(self, path: str, summary: str, reply: Any, **kw: Any) -> Callable[[Any], Any]:
        return self.route("DELETE", path, summary, reply, **kw)

    def route(
        self, method: str, path: str, summary: str, reply: Any, *, serve: bool = True, **kw: Any
    ) -> Callable[[Any], Any]:
        """`serve=False` documents a route that another table serves (core/ops.py's)."""

        def declare(handler: Any) -> Any:
            params = {**self.defaults.get("params", {}), **kw.get("params", {})}
            options = {
                "tag": self.tag,
                "op_id": self.prefix + handler.__name__,
                **self.defaults,
                **kw,
            }
            options["params"] = params
            op = Op(method, path, handler, summary=summary, reply=reply, **options)
            self.ops.append(op)
            if serve:
                self.routes.route(method, path)(op.serve)
            return handler

        return declare


@functools.cache
def query_fields(model: type[BaseModel]) -> tuple[tuple[str, bool, bool], ...]:
    """(name, repeated, required) of each field: repeated ones are read with getall."""
    props = model.model_json_schema()["properties"]
    return tuple(
        (name, "array" in (props[name].get("type"), *_types(props[name])), field.is_required())
        for name, field in model.model_fields.items()
    )


def _types(schema: dict[str, Any]) -> list[Any]:
    return [branch.get("type") for branch in schema.get("anyOf", [])]


def parse_query(model: type[Q], query: MultiMapping[str]) -> Q:
    """An empty value counts as absent; an absent required field is given as None, so
    its type reports it missing in field order."""
    data: dict[str, Any] = {}
    for name, repeated, required in query_fields(model):
        if repeated:
            values = query.getall(name, [])
            if values:
                data[name] = values
        elif value := query.get(name):
            data[name] = value
        elif required:
            data[name] = None
    try:
        return model.model_validate(data)
    except ValidationError as exc:  # the field types raise BadRequest first
        raise BadRequest(format_validation_error(exc, "query string")) from None
