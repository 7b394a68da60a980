"""The data of a delivery attempt, shared by the dispatcher and the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced, as the retry policy sees it."""

    status_code: int | None = None  # None: no HTTP answer (timeout, connection error)
    error: str | None = None  # error class, e.g. "timeout", "connect_error"
    retry_after: float | None = None  # seconds, from a 429/503 Retry-After header

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver says this callback will never be accepted."""
        return self.status_code == 410


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this dispatcher holds under a lease."""

    id: int
    task_id: str | None  # None: a batch's callback (dispatcher/batch_callbacks.py)
    account_id: str
    trigger: str
    target: str
    host: str
    payload: str  # the callback body as JSON text, exactly as it is sent and signed
    webhook_id: str
    attempt: int
    lease_token: UUID
    callback_auth_key: str
    signing_secrets: tuple[str, ...]  # the current one; then the previous one, in its grace
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptResult:
    started_at: datetime
    duration_ms: int
    outcome: Outcome
    excerpt: str
