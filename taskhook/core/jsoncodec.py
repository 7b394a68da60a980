"""JSON on the hot paths: orjson where its answer is the standard library's, json elsewhere.

Every ingested event is parsed from its request, its task's jsonb columns are decoded from
PostgreSQL and the callback body is encoded: a real share of `serve`'s CPU, which orjson
does several times faster than the standard library. The two differ only at the edges, and
those take the standard library's path, so values come out exactly as json's would:
- an integer past 64 bits: orjson parses it to a float (losing digits) and cannot write it;
- a lone surrogate or a key that is not a string: orjson cannot write it;
- what orjson refuses to parse (NaN, 1e400, a lone surrogate escape) is parsed, or refused
  with its message, by the standard library.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import BaseModel

# A number of 19 digits or more may be an integer orjson would turn into a float. Digits
# are masked to "0" (bytes.translate: a fraction of a parse) and each run of 19 is looked
# at: a number starts a value (the start, or after "[", ":" or ","), so a run inside a
# string (an id, a URL) is not one unless one of those precedes it; then the standard
# library parses: slower, never wrong. (A regular expression would cost more than the parse.)
_MASK_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19
_BEFORE_NUMBER = frozenset(b"[:,")
_SIGN_OR_SPACE = frozenset(b"- \t\r\n")
_ZERO = ord("0")


def _may_hold_long_integer(data: bytes) -> bool:
    masked = data.translate(_MASK_DIGITS)
    at = masked.find(_RUN)
    while at != -1:
        before = at - 1
        while before >= 0 and masked[before] in _SIGN_OR_SPACE:
            before -= 1
        if before < 0 or masked[before] in _BEFORE_NUMBER:
            return True
        end = at + len(_RUN)
        while end < len(masked) and masked[end] == _ZERO:
            end += 1
        at = masked.find(_RUN, end)
    return False


NOT_EXACT: Any = object()  # what exact_loads returns when only json can answer exactly


def exact_loads(data: str | bytes) -> Any:
    """orjson's parse if it is exactly json.loads's, else NOT_EXACT (long digits, or input
    orjson refuses: that may be valid for json, or invalid with json's message to give)."""
    if len(data) >= len(_RUN):  # shorter ones ("{}", "[]", a small value) cannot hold one
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        if _may_hold_long_integer(raw):
            return NOT_EXACT
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return NOT_EXACT


def loads(data: str | bytes) -> Any:
    """Parse JSON exactly as json.loads does (JSONDecodeError, a ValueError, if invalid)."""
    value = exact_loads(data)
    return json.loads(data) if value is NOT_EXACT else value


def _fields(value: Any) -> dict[str, Any]:
    """A reply model (core/replies.py) as the keys it was given: `built` ones hold
    exactly those, so their dict is written as it is."""
    if not isinstance(value, BaseModel):
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    given, fields = value.__pydantic_fields_set__, value.__dict__
    return fields if len(given) == len(fields) else {k: fields[k] for k in fields if k in given}


def dumps_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON (separators "," and ":", no ASCII escaping), as bytes."""
    try:
        return orjson.dumps(value, default=_fields)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a surrogate, a non-str key
        return _std_dumps(value).encode()


def dumps(value: Any) -> str:
    """dumps_bytes as text (what asyncpg's codecs and the stdlib-style callers take)."""
    try:
        return orjson.dumps(value, default=_fields).decode()
    except TypeError:
        return _std_dumps(value)


def _std_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_fields)
