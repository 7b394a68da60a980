"""POST /v1/events: signed workforce events (SPEC §3)."""

from __future__ import annotations

from aiohttp import web
from standardwebhooks.webhooks import WebhookVerificationError

from taskhook import events, metrics
from taskhook.errors import Unauthorized
from taskhook.logs import get_logger
from taskhook.receiver.keys import GROUP_COMMIT, INGEST
from taskhook.receiver.responses import ok
from taskhook.validation import decode_json

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


@routes.post("/v1/events")
async def ingest(request: web.Request) -> web.Response:
    raw = await request.read()
    _verify(request, raw)
    batch = events.parse_events(decode_json(raw))
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
