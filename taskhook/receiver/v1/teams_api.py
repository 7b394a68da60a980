"""Handlers of Scale's Teams API: the account's teammates and their roles.

One team per account, shared by both worlds like the account's settings, so reading it
takes any key and changing it a live one. An invitation adds the e-mail at once with its
role (a self-hosted team has no invitation mail to accept; `expiry` is always null) and
leaves a teammate already on the team as it is. Both changes answer with the whole team.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from taskhook.core import store
from taskhook.core.appkeys import POOL, principal
from taskhook.core.errors import BadRequest, Forbidden
from taskhook.core.logs import get_logger
from taskhook.core.models import TeamChange
from taskhook.core.principal import Principal
from taskhook.core.responses import ok
from taskhook.core.validation import decode_json, parse_model

log = get_logger("taskhook.teams")
routes = web.RouteTableDef()

# One "@", something on each side, no spaces or control characters: a mistyped address
# is refused, and nothing more is guessed (there is no mail to send).
_EMAIL = re.compile(r"[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+")
MAX_EMAIL_CHARS = 254


def teammate_json(row: Any, account_name: str) -> dict[str, Any]:
    """What the SDK's Teammate reads (email, role; the rest optional)."""
    return {
        "email": row["email"],
        "role": row["role"],
        "company": account_name,
        "firstName": None,
        "lastName": None,
        "isStudioLabeler": row["role"] == "labeler",
        "expiry": None,
    }


def check_emails(emails: list[str]) -> list[str]:
    """Lower-cased, duplicates dropped, order kept; a malformed one is a 400 naming it."""
    seen: dict[str, None] = {}
    for email in emails:
        if len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email):
            raise BadRequest(f"'{email[:100]}' is not an e-mail address.")
        seen.setdefault(email.lower(), None)
    return list(seen)


async def _team(conn: Any, who: Principal) -> web.Response:
    rows = await store.list_teammates(conn, who.account_id)
    return ok([teammate_json(r, who.account_name) for r in rows])


def _change(request: web.Request, raw: bytes) -> tuple[Principal, list[str], str]:
    who = principal(request)
    if who.is_test:
        raise Forbidden("The team is the account's: it can only be changed with a live API key.")
    body = parse_model(TeamChange, decode_json(raw))
    return who, check_emails(body.emails), body.team_role


@routes.get("/v1/teams")
async def list_teammates(request: web.Request) -> web.Response:
    return await _team(request.app[POOL], principal(request))


@routes.post("/v1/teams/invite")
async def invite(request: web.Request) -> web.Response:
    who, emails, role = _change(request, await request.read())
    ids = [secrets.token_hex(12) for _ in emails]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await store.invite_teammates(conn, who.account_id, emails, role, ids)
        reply = await _team(conn, who)
    log.info("team.invited", emails=len(emails), role=role)
    return reply


@routes.post("/v1/teams/set_role")
async def set_role(request: web.Request) -> web.Response:
    who, emails, role = _change(request, await request.read())
    async with request.app[POOL].acquire() as conn, conn.transaction():
        changed = await store.set_teammates_role(conn, who.account_id, emails, role)
        unknown = [e for e in emails if e not in changed]
        if unknown:
            raise BadRequest(f"Not on the team: {', '.join(unknown[:5])}. Invite them first.")
        reply = await _team(conn, who)
    log.info("team.role_set", emails=len(emails), role=role)
    return reply
