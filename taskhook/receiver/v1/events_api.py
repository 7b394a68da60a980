"""POST /v1/events: signed workforce events (SPEC §3)."""

from __future__ import annotations

from aiohttp import web
from standardwebhooks.webhooks import WebhookVerificationError

from taskhook.core import events, metrics
from taskhook.core.errors import Unauthorized
from taskhook.core.logs import get_logger
from taskhook.core.models import Event
from taskhook.core.responses import ok
from taskhook.core.validation import check_stored_time, decode_json
from taskhook.receiver.keys import GROUP_COMMIT, INGEST

log = get_logger("taskhook.events")
routes = web.RouteTableDef()


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
    round-trip is a 400 naming the event, like every other invalid event."""
    for index, event in enumerate(batch):
        if event.occurred_at is not None:
            where = f"event {index} (event_id {event.event_id!r}): 'occurred_at'"
            check_stored_time(event.occurred_at, where)


@routes.post("/v1/events")
async def ingest(request: web.Request) -> web.Response:
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
    return ok({"results": results})
