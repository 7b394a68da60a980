"""Input rules shared by every endpoint: JSON decoding, pydantic errors, tags, metadata."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from taskhook.core import jsoncodec
from taskhook.core.errors import BadRequest

MAX_TAGS = 5
MAX_TAG_CHARS = 200
MAX_METADATA_BYTES = 10 * 1024  # Scale: "Max 10KB"
MAX_UNIQUE_ID_CHARS = 1000
MAX_NESTING = 64  # deeper JSON is refused before it reaches the database

M = TypeVar("M", bound=BaseModel)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(raw: bytes, *, allow_empty: bool = False) -> Any:
    """Parse a request body; 400 that says what is wrong. Empty means None if allowed."""
    if not raw.strip():
        if allow_empty:
            return None
        raise BadRequest("Request body is empty; a JSON body is required.")
    value = jsoncodec.exact_loads(raw)
    if value is not jsoncodec.NOT_EXACT and _storable_as_parsed(raw, value):
        return value
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise BadRequest("Request body is not valid UTF-8.") from None
    except RecursionError:
        raise BadRequest("Request body is nested too deeply.") from None
    except ValueError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}.") from None
    check_storable(value, "body")
    return value


def _storable_as_parsed(raw: bytes, value: Any) -> bool:
    """Whether what orjson parsed passes check_storable, known without walking every
    string: orjson refuses invalid UTF-8, lone surrogates and non-finite numbers, so only
    an escaped NUL and the depth remain (a body with few brackets cannot be deep)."""
    if b"\\u0000" in raw:
        return False
    return raw.count(b"[") + raw.count(b"{") <= MAX_NESTING or _shallow(value, 0)


def _shallow(value: Any, depth: int) -> bool:
    """check_storable's depth rule, visiting only containers: nothing below MAX_NESTING."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return True
    if value and depth + 1 > MAX_NESTING:
        return False
    return all(_shallow(v, depth + 1) for v in value if isinstance(v, dict | list))


def check_storable(value: Any, where: str, depth: int = 0) -> None:
    """PostgreSQL refuses NUL characters, lone surrogates and non-finite numbers: 400 first."""
    if depth > MAX_NESTING:
        raise BadRequest(f"{where}: nested deeper than {MAX_NESTING} levels.")
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{where}: number is out of range.")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where)
            check_storable(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{where}[{index}]", depth + 1)


def check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise BadRequest(f"{where}: strings may not contain the NUL character.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where}: string is not valid Unicode.") from None


def parse_model(model: type[M], data: Any, what: str = "body") -> M:
    """Validate with pydantic; turn the first errors into one readable 400 message."""
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(format_validation_error(exc, what)) from None


def format_validation_error(exc: ValidationError, what: str = "body") -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or what
        parts.append(f"'{loc}': {err['msg']}")
    return "Invalid " + what + ": " + "; ".join(parts) + "."


def normalize_tags(tags: Any, where: str = "tags") -> list[str]:
    """Tags: a list of non-empty strings, duplicates dropped, order kept, at most 5."""
    if not isinstance(tags, list):
        raise BadRequest(f"'{where}' must be an array of strings.")
    result: list[str] = []
    for index, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise BadRequest(f"'{where}[{index}]' must be a string.")
        if not tag.strip():
            raise BadRequest(f"'{where}[{index}]' must be a non-empty string.")
        if len(tag) > MAX_TAG_CHARS:
            raise BadRequest(f"'{where}[{index}]' is longer than {MAX_TAG_CHARS} characters.")
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise BadRequest(f"'{where}' has {len(result)} tags; at most {MAX_TAGS} are allowed.")
    return result


def check_metadata(metadata: Any, where: str = "metadata") -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise BadRequest(f"'{where}' must be a JSON object.")
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise BadRequest(
            f"'{where}' is {size} bytes; at most {MAX_METADATA_BYTES} bytes (10 KB) are allowed."
        )
    return metadata


def check_unique_id(value: Any, where: str = "unique_id") -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{where}' must be a non-empty string.")
    if len(value) > MAX_UNIQUE_ID_CHARS:
        raise BadRequest(f"'{where}' is longer than {MAX_UNIQUE_ID_CHARS} characters.")
    return value


# Times that are stored: asyncpg sends datetime.min and datetime.max as -infinity and
# infinity (which then read back as naive, unusable datetimes), and cannot send a time that
# leaves the datetime range once moved to UTC. Real events fall well inside these bounds.
EARLIEST_STORED = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_STORED = datetime(9999, 1, 1, tzinfo=UTC)


# How far ahead of the server's clock a reported time may be: the tolerance Standard
# Webhooks gives a signature's timestamp, so a sender whose clock passes one check passes
# the other. Further ahead, a task would show a completion after its last update.
CLOCK_SKEW = timedelta(minutes=5)


def check_not_ahead(value: datetime, now: datetime, where: str) -> None:
    """A time something happened, in UTC: at most CLOCK_SKEW after `now`, else 400."""
    if value > now + CLOCK_SKEW:
        raise BadRequest(
            f"{where} is in the future: {value.isoformat()} is more than "
            f"{CLOCK_SKEW.seconds // 60} minutes ahead of the server's clock "
            f"({now.isoformat(timespec='seconds')})."
        )


def check_stored_time(value: datetime, where: str) -> datetime:
    """A time to be stored, in UTC (naive means UTC): from 1970 up to year 9999, else 400."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_STORED <= utc < LATEST_STORED:
        raise BadRequest(
            f"{where} is out of range: {value.isoformat()} (from "
            f"{EARLIEST_STORED.date()} up to {LATEST_STORED.date()}, UTC)."
        )
    return utc


def parse_time(value: str, where: str) -> datetime:
    """ISO 8601: date only, 'T' or space separated, with or without an offset (UTC if none)."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
        # In UTC now: an offset that moves the time past year 1 or 9999 is refused here.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(
            f"'{where}' is not a valid date: {value!r} (use ISO 8601, e.g. 2024-01-31 "
            "or 2024-01-31T12:00:00Z)."
        ) from None
    except OverflowError:
        raise BadRequest(f"'{where}' is out of range: {value!r}.") from None
