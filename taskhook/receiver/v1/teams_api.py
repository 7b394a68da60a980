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
from taskhook.core.replies import Teammate, built
from taskhook.core.responses import ok
from taskhook.receiver.routes import Api, model_body

log = get_logger("taskhook.teams")
api = Api("teams")
routes = api.routes
_LIVE_ONLY = "Changing the account's team needs a live key (a test key: 403)."

# One "@", something on each side, no spaces or control characters: a mistyped address
# is refused, and nothing more is guessed (there is no mail to send).
_EMAIL = re.compile(r"[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+")
MAX_EMAIL_CHARS = 254


def teammate_json(row: Any, account_name: str) -> Teammate:
    """What the SDK's Teammate reads (email, role; the rest optional)."""
    return built(
        Teammate,
        {
            "email": row["email"],
            "role": row["role"],
            "company": account_name,
            "firstName": None,
            "lastName": None,
            "isStudioLabeler": row["role"] == "labeler",
            "expiry": None,
        },
    )


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


def _live_key_only(request: web.Request) -> None:
    if principal(request).is_test:
        raise Forbidden("The team is the account's: it can only be changed with a live API key.")


def _change(path: str, summary: str, description: str) -> Any:
    return api.post(
        path,
        summary,
        list[Teammate],
        errors=(403,),
        guard=_live_key_only,
        body=model_body(TeamChange, "E-mails (at most 100) and the role."),
        description=description + " " + _LIVE_ONLY,
    )


@api.get("/v1/teams", "List the account's team", list[Teammate])
async def list_teammates(request: web.Request) -> web.Response:
    return await _team(request.app[POOL], principal(request))


@_change(
    "/v1/teams/invite",
    "Add teammates with a role",
    "A teammate already on the team keeps its role.",
)
async def invite_teammates(request: web.Request, body: TeamChange) -> web.Response:
    who, emails, role = principal(request), check_emails(body.emails), body.team_role
    ids = [secrets.token_hex(12) for _ in emails]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await store.invite_teammates(conn, who.account_id, emails, role, ids)
        reply = await _team(conn, who)
    log.info("team.invited", emails=len(emails), role=role)
    return reply


@_change(
    "/v1/teams/set_role",
    "Change teammates' role",
    "Every e-mail must be on the team (else 400, nothing changes).",
)
async def update_teammates_role(request: web.Request, body: TeamChange) -> web.Response:
    who, emails, role = principal(request), check_emails(body.emails), body.team_role
    async with request.app[POOL].acquire() as conn, conn.transaction():
        changed = await store.set_teammates_role(conn, who.account_id, emails, role)
        unknown = [e for e in emails if e not in changed]
        if unknown:
            raise BadRequest(f"Not on the team: {', '.join(unknown[:5])}. Invite them first.")
        reply = await _team(conn, who)
    log.info("team.role_set", emails=len(emails), role=role)
    return reply
