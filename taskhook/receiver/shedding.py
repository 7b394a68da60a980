"""Load shedding: past its capacity the receiver answers 503 with Retry-After at once,
instead of queueing work until memory or latency runs away.

Two limits per process, checked before authentication (so a flood costs no database work):
requests in flight, and the declared body bytes of requests in flight. A request over
either limit is answered `503 {"status_code": 503, "error": ...}` with `Retry-After`. The
event-ingest queue of the group committer has its own bound; when it is full the
committer raises `Overloaded`, which this middleware answers the same way. Health
endpoints (/healthz, /readyz, /metrics) are never shed and do not count. A file upload
counts as a request but not by its bytes: it streams to disk, never held in memory.

Every shed request is counted in `taskhook_requests_shed_total{reason}`.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from taskhook.core import metrics
from taskhook.core.errors import ApiError
from taskhook.core.responses import error

RETRY_AFTER_SECONDS = 1

_NEVER_SHED = ("/healthz", "/readyz", "/metrics")
_STREAMED_TO_DISK = ("/v1/files/upload",)


class Overloaded(ApiError):
    """The process is at capacity; retry after `retry_after` seconds (503)."""

    status = 503

    def __init__(self, reason: str, message: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.reason, self.retry_after = reason, retry_after


def shed_response(exc: Overloaded) -> web.Response:
    metrics.SHED.labels(exc.reason).inc()
    return error(exc.status, exc.message, {"Retry-After": str(exc.retry_after)})


def shed_overload(max_in_flight: int, max_body_bytes: int) -> Middleware:
    """A middleware with its own counters (one app per process: the limits are per process).

    It belongs after the error middleware and before authentication.
    """
    in_flight = 0
    body_bytes = 0

    @web.middleware
    async def shed(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight, body_bytes
        if request.path.startswith(_NEVER_SHED):
            return await handler(request)
        limit, byte_limit = max_in_flight, max_body_bytes
        # Declared, not yet read: a body over the app's size limit is refused (413) while
        # it is read, so a huge declared length is not taken at its word.
        size = min(request.content_length or 0, byte_limit)
        if request.path.startswith(_STREAMED_TO_DISK):
            size = 0
        if in_flight >= limit:
            return shed_response(
                Overloaded(
                    "in_flight",
                    f"The server is at capacity ({limit} requests in flight); "
                    f"retry after {RETRY_AFTER_SECONDS} s.",
                )
            )
        if in_flight and body_bytes + size > byte_limit:
            return shed_response(
                Overloaded(
                    "body_bytes",
                    "The server is at capacity (request bodies in flight); "
                    f"retry after {RETRY_AFTER_SECONDS} s.",
                )
            )
        in_flight += 1
        body_bytes += size
        try:
            return await handler(request)
        except Overloaded as exc:  # a bounded queue further in was full
            return shed_response(exc)
        finally:
            in_flight -= 1
            body_bytes -= size

    return shed
