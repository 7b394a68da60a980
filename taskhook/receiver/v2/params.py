"""Query strings of the v2 endpoints, as the SDK's `client.v2` sends them.

Values are percent-encoded (aiohttp decodes them); `expand` and `opts` repeat
(`expand=project&expand=batch`; a comma list is accepted too); datetimes come as
`2024-01-02T03:04:05.678901` (no offset: UTC) or with `+0000`; `limit` is 1 to 100. An empty
value counts as absent. An unknown value of a closed list is a 400 naming the parameter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from taskhook.core import cursor
from taskhook.core.appkeys import TOKEN_KEY, principal
from taskhook.core.errors import BadRequest
from taskhook.core.models_v2 import OPTIONS
from taskhook.core.responses import ok
from taskhook.core.store.v2 import Cursor
from taskhook.core.validation import parse_time
from taskhook.receiver.v1.params import parse_limit
from taskhook.v2.serialize import dump

TASK_EXPAND = frozenset({"project", "batch"})
DELIVERY_EXPAND = frozenset({"project", "batch", "delivery"})
PROJECT_EXPAND = frozenset({"project"})
_REST_OF_MILLISECOND = timedelta(microseconds=999)


def one(query: MultiMapping[str], name: str) -> str | None:
    return query.get(name) or None


def required(query: MultiMapping[str], name: str) -> str:
    value = one(query, name)
    if value is None:
        raise BadRequest(f"Missing required query parameter '{name}'.")
    return value


def choice(query: MultiMapping[str], name: str, allowed: frozenset[str]) -> str | None:
    value = one(query, name)
    if value is not None and value not in allowed:
        raise BadRequest(
            f"'{name}' has an unknown value {value!r}; expected one of "
            f"{', '.join(sorted(allowed))}."
        )
    return value


def several(query: MultiMapping[str], name: str, allowed: frozenset[str]) -> frozenset[str]:
    values = {p.strip() for v in query.getall(name, []) for p in v.split(",") if p.strip()}
    unknown = values - allowed
    if unknown:
        raise BadRequest(
            f"'{name}' has unknown values {sorted(unknown)}; expected any of "
            f"{', '.join(sorted(allowed))}."
        )
    return frozenset(values)


def expand(query: MultiMapping[str], allowed: frozenset[str]) -> frozenset[str]:
    return several(query, "expand", allowed)


def opts(query: MultiMapping[str]) -> frozenset[str]:
    return several(query, "opts", OPTIONS)


def time(query: MultiMapping[str], name: str) -> datetime | None:
    """Bounds are exclusive. Times are shown to the millisecond but stored to the
    microsecond, so an `..._after` bound given to the millisecond means after that whole
    millisecond: `created_after=<a batch's created_at>` leaves that batch out."""
    raw = one(query, name)
    if raw is None:
        return None
    value = parse_time(raw, name)
    if name.endswith("_after") and value.microsecond % 1000 == 0:
        value += _REST_OF_MILLISECOND
    return value


def limit(query: MultiMapping[str]) -> int:
    return parse_limit(query)


class Pager:
    """Keyset paging with signed, opaque `next_token`s (taskhook/cursor.py), bound to the
    account, the world and the list (a token of one list is refused by another)."""

    def __init__(self, request: web.Request, kind: str) -> None:
        who = principal(request)
        self.key = request.app[TOKEN_KEY]
        self.scope = f"v2:{kind}|{who.account_id}|{who.is_test}"
        self.limit = limit(request.query)
        token = one(request.query, "next_token")
        self.after: Cursor = cursor.decode(self.key, self.scope, token) if token else None

    def page(
        self, rows: list[Any], key: tuple[str, str] = ("created_at", "id")
    ) -> tuple[list[Any], str | None]:
        """Rows fetched with limit + 1: this page, and the token of the next one (None on the
        last page: `next_token` is then left out, never `""`)."""
        if len(rows) <= self.limit:
            return rows, None
        rows = rows[: self.limit]
        last = rows[-1]
        return rows, cursor.encode(self.key, self.scope, last[key[0]], last[key[1]])


def reply(model: Any, options: frozenset[str] = frozenset()) -> web.Response:
    return ok(dump(model, options))
