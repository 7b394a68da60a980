"""POST /v1/events: signed workforce events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from pydantic import Field
from standardwebhooks.webhooks import WebhookVerificationError

from taskhook.core import events, metrics
from taskhook.core.errors import Unauthorized
from taskhook.core.events import MAX_EVENTS
from taskhook.core.logs import get_logger
from taskhook.core.models import Event
from taskhook.core.replies import IngestReply, built
from taskhook.core.responses import ok
from taskhook.core.validation import check_not_ahead, check_stored_time, decode_json
from taskhook.receiver.keys import GROUP_COMMIT, INGEST
from taskhook.receiver.routes import Api, Body

log = get_logger("taskhook.events")
api = Api("events")
routes = api.routes
Events = Event | Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS)]


def _header(name: str, description: str, **schema: str) -> dict[str, object]:
    full: dict[str, object] = {"type": "string", "minLength": 1, **schema}
    return {
        "name": name,
        "in": "header",
        "required": True,
        "description": description,
        "schema": full,
    }


WEBHOOK_HEADERS = (
    _header("webhook-id", "Standard Webhooks message id."),
    _header(
        "webhook-timestamp",
        "Unix seconds; more than 5 minutes from the server's clock is a 401.",
        pattern="^[0-9]+$",
    ),
    _header(
        "webhook-signature",
        "`v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{raw body}` under "
        "TASKHOOK_INGEST_SECRET (several space-separated signatures are allowed).",
    ),
)


def _verify(request: web.Request, raw: bytes) -> None:
    """Standard Webhooks over the raw body, 5-minute tolerance; anything else is 401."""
    try:
        request.app[INGEST].verify(raw, dict(request.headers), json_parse=False)
    except (WebhookVerificationError, ValueError):
        raise Unauthorized(
            "Invalid or missing webhook signature (webhook-id, webhook-timestamp, "
            "webhook-signature, signed with TASKHOOK_INGEST_SECRET, within 5 minutes)."
        ) from None


def _check_times(batch: list[Event]) -> None:
    """occurred_at is stored (completed_at, audited_at): one the database cannot hold
    round-trip, or one ahead of the server's clock (a completion that would show after
    every later update), is a 400 naming the event, like every other invalid event."""
    now = datetime.now(UTC)
    for index, event in enumerate(batch):
        if event.occurred_at is not None:
            where = f"event {index} (event_id {event.event_id!r}): 'occurred_at'"
            at = check_stored_time(event.occurred_at, where)
            check_not_ahead(at, now, where)


@api.post(
    "/v1/events",
    "Report what happened to tasks (signed workforce events)",
    IngestReply,
    errors=(401, 503),
    public=True,
    headers=WEBHOOK_HEADERS,
    body=Body(
        Events,
        f"One event or an array of 1 to {MAX_EVENTS}; an invalid one is a 400 and nothing is "
        "applied.",
        None,  # verified over the raw bytes first
    ),
    description="Signed with Standard Webhooks headers under TASKHOOK_INGEST_SECRET, verified "
    "over the raw body with a 5-minute tolerance; anything else is a 401. No API key. One "
    "request is one transaction. A rejected event (unknown task, wrong state) does not stop "
    "the others.",
)
async def ingest_events(request: web.Request) -> web.Response:
    raw = await request.read()
    _verify(request, raw)
    batch = events.parse_events(decode_json(raw))
    _check_times(batch)
    results = await request.app[GROUP_COMMIT].submit(batch)
    for event, result in zip(batch, results, strict=True):
        metrics.EVENTS.labels(event.type, result["status"]).inc()
        log.info(
            "event.ingested",
            event_id=event.event_id,
            type=event.type,
            task_id=event.task_id,
            result=result["status"],
            error=result.get("error"),
        )
    return ok(built(IngestReply, {"results": results}))
