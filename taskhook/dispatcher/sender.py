"""One delivery attempt: build the signed request, POST it, classify what came back.

No database here: the caller claimed the delivery (and released its connection) before,
and records the result after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import aiohttp
from standardwebhooks.webhooks import Webhook

from taskhook import __version__
from taskhook.core.delivery import AttemptResult, Claimed, Outcome
from taskhook.core.retry import parse_retry_after
from taskhook.core.smtp import SmtpConfig
from taskhook.core.targets import TargetRefused, check_url, refused
from taskhook.dispatcher.mailer import mail

EXCERPT_CHARS = 1000  # stored per attempt; enough to see an error page's gist
USER_AGENT = f"taskhook/{__version__}"


@dataclass(frozen=True, slots=True)
class SendConfig:
    connect_timeout: float
    total_timeout: float
    max_response_bytes: int
    allow_private: bool
    smtp: SmtpConfig | None = None
    # Built once: aiohttp's total timeout covers connecting, sending and reading the body.
    timeout: aiohttp.ClientTimeout = field(init=False)

    def __post_init__(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.total_timeout, connect=self.connect_timeout)
        object.__setattr__(self, "timeout", timeout)


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    """A signer per secret: building one decodes the secret, which each callback would
    otherwise repeat."""
    return Webhook(secret)


def request_parts(d: Claimed, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and headers of a callback; the signature covers those bytes."""
    body = d.payload
    # During a rotation's grace period both secrets sign; Standard Webhooks receivers
    # accept any of the space-separated signatures, so either secret verifies.
    signature = " ".join(_signer(s).sign(d.webhook_id, now, body) for s in d.signing_secrets)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "scale-callback-auth": d.callback_auth_key,
        "webhook-id": d.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def _is_email(target: str) -> bool:
    return "://" not in target and "@" in target


async def send(session: aiohttp.ClientSession, d: Claimed, cfg: SendConfig) -> AttemptResult:
    started_at = datetime.now(UTC)
    began = time.perf_counter()
    excerpt = ""
    try:
        if _is_email(d.target):
            if cfg.smtp is None:
                outcome = Outcome(error="smtp_not_configured")
            else:
                outcome, excerpt = await mail(d, cfg.smtp, cfg.total_timeout)
        else:
            outcome, excerpt = await _post(session, d, cfg, started_at)
    except TargetRefused:
        outcome = Outcome(error="forbidden_target")
    except TimeoutError:
        outcome = Outcome(error="timeout")
    except aiohttp.ClientError as exc:
        outcome = Outcome(error=_error_class(exc))
    duration_ms = round((time.perf_counter() - began) * 1000)
    return AttemptResult(started_at, duration_ms, outcome, excerpt)


async def _post(
    session: aiohttp.ClientSession, d: Claimed, cfg: SendConfig, now: datetime
) -> tuple[Outcome, str]:
    url = check_url(d.target, cfg.allow_private)
    body, headers = request_parts(d, now)
    async with session.post(
        url, data=body, headers=headers, allow_redirects=False, timeout=cfg.timeout
    ) as resp:
        head = await resp.content.read(cfg.max_response_bytes)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        outcome = Outcome(status_code=resp.status, retry_after=retry_after)
    return outcome, head.decode("utf-8", "replace")[:EXCERPT_CHARS]


def _error_class(exc: aiohttp.ClientError) -> str:
    if refused(exc):
        return "forbidden_target"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect_error"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    return "http_error"
