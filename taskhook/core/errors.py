"""The error hierarchy. Domain code raises these; the receiver turns them into 4xx JSON."""

from __future__ import annotations


class TaskhookError(Exception):
    """Root of taskhook's own errors."""


class ConfigError(TaskhookError):
    """A setting is missing or invalid; the process cannot start."""


class ApiError(TaskhookError):
    """An error answered to the client as `{"status_code": N, "error": message}`."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    """The request is malformed or breaks a rule (400)."""

    status = 400


class Unauthorized(ApiError):
    """No valid API key was given (401)."""

    status = 401


class Forbidden(ApiError):
    """The key is valid but may not do this (403), e.g. a test key changing the account."""

    status = 403


class NotFound(ApiError):
    """The object does not exist for this account and world (404)."""

    status = 404


class Conflict(ApiError):
    """A unique name, unique_id or idempotency key is already used (409)."""

    status = 409


class TooManyRequests(ApiError):
    """The same idempotency key is still being processed; retry later (429)."""

    status = 429
